import AISLFDCommands

CommandMain.run(EvalCommand.self)
