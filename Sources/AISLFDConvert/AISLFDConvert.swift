// AISLFDConvert
