// AISLFDVerify
