using EdgeSlm.Fuzz;

// edgeslm fuzzing harness (docs/reliability.md):
//   EdgeSlm.Fuzz TARGET                  run under afl-fuzz: `afl-fuzz ... -- dotnet EdgeSlm.Fuzz.dll TARGET`
//                                        (without afl-fuzz: one input from standard input)
//   EdgeSlm.Fuzz replay TARGET PATH...   run files or folders in-process, print each outcome; exit 1 on a crash
//   EdgeSlm.Fuzz list                    the targets, one a line
//   EdgeSlm.Fuzz seeds CORPUS_DIR        write the generated binary seeds (GGUF, ONNX) under CORPUS_DIR/<target>/
if (args is ["list"])
{
    foreach (string name in FuzzTargets.Names)
    {
        Console.WriteLine(name);
    }
    return 0;
}
if (args is ["seeds", string corpus])
{
    foreach (string path in BinarySeeds.WriteAll(corpus))
    {
        Console.WriteLine($"{path}: {new FileInfo(path).Length} bytes");
    }
    return 0;
}
if (args is ["replay", string replayTarget, .. string[] paths] && paths.Length > 0)
{
    return Replay(replayTarget, paths);
}
if (args is [string target] && FuzzTargets.Names.Contains(target))
{
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var input = new MemoryStream();
        stream.CopyTo(input);
        FuzzTargets.Run(target, input.ToArray());
    });
    return 0;
}
Console.Error.WriteLine($"usage: EdgeSlm.Fuzz TARGET | replay TARGET PATH... | list | seeds CORPUS_DIR (targets: {string.Join(", ", FuzzTargets.Names)})");
return 2;

static int Replay(string target, string[] paths)
{
    IEnumerable<string> files = paths.SelectMany<string, string>(p => Directory.Exists(p)
        ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
        : new[] { p });
    int crashes = 0;
    foreach (string file in files)
    {
        byte[] input = File.ReadAllBytes(file);
        try
        {
            FuzzOutcome outcome = FuzzTargets.Run(target, input);
            Console.WriteLine($"{file}: {(outcome.Accepted ? "read" : "refused")}: {outcome.Detail}");
        }
        catch (Exception e)
        {
            crashes++;
            Console.WriteLine($"{file}: CRASH on \"{FuzzTargets.Printable(input)}\"\n{e}");
        }
    }
    return crashes == 0 ? 0 : 1;
}
