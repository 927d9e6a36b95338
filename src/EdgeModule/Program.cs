using EdgeSlm.EdgeModule.Cli;

return CommandLine.Run(args, Console.Out, Console.Error);
