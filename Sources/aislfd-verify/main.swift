import AISLFDCommands

CommandMain.run(VerifyCommand.self)
