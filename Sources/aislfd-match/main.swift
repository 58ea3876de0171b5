import AISLFDCommands

CommandMain.run(MatchCommand.self)
