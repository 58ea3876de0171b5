// AISLFDCommands
