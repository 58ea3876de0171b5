import AISLFDCommands

CommandMain.run(ConvertCommand.self)
