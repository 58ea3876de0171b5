// AISLFDSchema
