import AISLFDCommands

CommandMain.run(RunCommand.self)
