import AISLFDCommands

CommandMain.run(InspectCommand.self)
