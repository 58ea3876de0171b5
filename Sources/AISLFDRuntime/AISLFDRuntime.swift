// AISLFDRuntime
