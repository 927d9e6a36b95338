using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Onnx;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary>The <c>edgeslm</c> command line: parses the verb and hands over. Errors are one line on stderr and a non-zero exit.</summary>
internal static class CommandLine
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    private const string Usage =
        $"""
        edgeslm: intent recognition for voice transcripts and sensor events on the edge, int4 on NEON.

        Usage:
          edgeslm info --cpu        CPU features and the int8 kernel path this process selects
          edgeslm info FILE.gguf    a GGUF file's metadata and tensor table
          edgeslm convert --bundled minilm|arctic-xs [--type q4_0|q8_0|f16|f32] -o OUT.gguf
          edgeslm convert --onnx FILE --vocab FILE [--pooling mean|cls] [--type ...] -o OUT.gguf
                                    convert a BERT-family ONNX model to GGUF (llama.cpp's bert layout)
          edgeslm embed [--model FILE] [--threads N] [--file SENTENCES | TEXT...]
                                    one JSON array (pooled, L2-normalised embedding) per input line
          edgeslm classify [--model FILE] [--intents FILE] [--threshold X] [--file SENTENCES | TEXT...]
                           [--slm FILE.gguf [--slm-mode fallback|only] [--slm-threads N] [--budget-ms N]]
                                    one JSON result per input: intent, confidence, slots, recognized, source;
                                    with --slm a llama/qwen2 model decides what the classifier does not recognise
          edgeslm run [--config FILE] [--broker mqtt://HOST:PORT | mqtts://HOST:PORT | embedded]
                      [--profile hermes,native,wyoming] [--intents FILE] [--model FILE] [--site ID] [--threads N]
                      [--Section:Key VALUE ...]
                                    the MQTT module: transcripts in, intents out (see README for every setting)
          edgeslm health [same settings as run] [--timeout S]
                                    exit 0 when that module is online (its retained status on its broker)
          edgeslm demo [TEXT...]    the module on an embedded broker with the sample home intents, fed a few transcripts
          edgeslm eval [--model FILE] --train FILE.jsonl --test FILE.jsonl [--json] [--threads N]
                       [--tune [--tune-epochs N] [--tune-seed S]]
                                    train an intent classifier on one file, report accuracy on the other;
                                    with --tune also for the encoder fine-tuned on the train file
          edgeslm train --intents FILE [--model bundled:NAME|FILE] [--epochs N] [--seed S] [--threads N]
                        [--rate X] [--slot-weight X] [--batch N] [--type q4_0|q8_0|f16|f32] [--f32 FILE] -o TUNED.gguf
                                    fine-tune the encoder on the intents' examples; use the result with --model
        {GenerateCommand.Usage}
          edgeslm --version         version, runtime and architecture
          edgeslm --help            this text

        Environment:
          EDGESLM_KERNELS           force a kernel path: auto|reference|portable|avx2|avx-vnni|neon|neon-dotprod
          EDGESLM_CACHE             where the default model is converted to (default ~/.cache/edgeslm)
          EDGESLM__Section__Key     any setting of run, e.g. EDGESLM__Mqtt__Broker=mqtt://broker:1883
        """;

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        try
        {
            return args switch
            {
                [] or ["--help"] or ["-h"] or ["help"] => Print(output, Usage),
                ["help", string verb] => Help(verb, output, error),
                [string verb, .. var rest] when rest.Contains("--help") || rest.Contains("-h") => Help(verb, output, error),
                ["--version"] or ["version"] => Print(output, VersionLine()),
                ["info", "--cpu"] => Print(output, CpuReport()),
                ["info", string file] when !file.StartsWith('-') => GenerateCommand.Info(file, output),
                ["info", ..] => Fail(error, ExitUsage, "info: say what to show (--cpu or a GGUF file)."),
                ["convert", .. var rest] => ModelCommands.Convert(new Arguments(rest, new HashSet<string> { "plain" }), output, error),
                ["embed", .. var rest] => ModelCommands.Embed(new Arguments(rest, new HashSet<string>()), output),
                ["classify", .. var rest] => ClassifyCommand.Run(new Arguments(rest, new HashSet<string>()), output, error),
                ["run", .. var rest] => ModuleCommands.Run(new Arguments(rest, new HashSet<string>()), error),
                ["health", .. var rest] => ModuleCommands.Health(new Arguments(rest, new HashSet<string>()), output, error),
                ["demo", .. var rest] => ModuleCommands.Demo(new Arguments(rest, new HashSet<string>()), output, error),
                ["eval", .. var rest] => EvalCommand.Run(new Arguments(rest, new HashSet<string> { "json", "tune" }), output),
                ["train", .. var rest] => TrainCommand.Run(new Arguments(rest, new HashSet<string>()), output, error),
                ["generate", .. var rest] => GenerateCommand.Run(new Arguments(rest, new HashSet<string> { "ignore-eos", "chat" }), output, error),
                [string verb, ..] => Fail(error, ExitUsage, $"Unknown command '{verb}'. Run 'edgeslm --help'."),
            };
        }
        catch (UsageException e)
        {
            return Fail(error, ExitUsage, e.Message);
        }
        catch (Exception e) when (e is NotSupportedException or GgufFormatException or OnnxFormatException
            or IOException or UnauthorizedAccessException or InvalidDataException or FormatException or ArgumentException
            or IntentFileException or TemplateFormatException)
        {
            // Bad input ends with one line and a non-zero exit, never a stack trace.
            return Fail(error, ExitFailure, e.Message);
        }
    }

    /// <summary>Each command's own usage: its lines of <see cref="Usage"/>.</summary>
    private static int Help(string verb, TextWriter output, TextWriter error)
    {
        string[] lines = Usage.Split('\n');
        var own = new List<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith($"  edgeslm {verb} ", StringComparison.Ordinal) && lines[i].TrimEnd() != $"  edgeslm {verb}")
            {
                continue;
            }
            own.Add(lines[i].TrimEnd());
            // The command's continuation lines are indented deeper than "  edgeslm".
            for (int j = i + 1; j < lines.Length && lines[j].StartsWith("      ", StringComparison.Ordinal); j++)
            {
                own.Add(lines[j].TrimEnd());
                i = j;
            }
        }
        if (own.Count == 0)
        {
            return Fail(error, ExitUsage, $"Unknown command '{verb}'. Run 'edgeslm --help'.");
        }
        output.WriteLine("Usage:");
        foreach (string line in own) output.WriteLine(line);
        output.WriteLine();
        output.WriteLine("Run 'edgeslm --help' for every command and the environment variables; README.md has every setting of run.");
        return ExitOk;
    }

    private static string VersionLine()
    {
        string version = typeof(CommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        return $"edgeslm {version} ({RuntimeInformation.FrameworkDescription}, {RuntimeInformation.RuntimeIdentifier}, {(RuntimeFeature.IsDynamicCodeSupported ? "JIT" : "NativeAOT")})";
    }

    private static string CpuReport()
    {
        var lines = new List<string>
        {
            $"architecture: {RuntimeInformation.ProcessArchitecture}",
            $"os: {RuntimeInformation.OSDescription}",
            $"processors: {Environment.ProcessorCount}",
            $"vectors: {KernelPaths.DescribeVectors()}",
        };
        lines.AddRange(KernelPaths.CpuFeatures().Select(f => $"feature {f.Name}: {(f.Supported ? "yes" : "no")}"));
        lines.Add($"supported kernel paths: {string.Join(", ", KernelPaths.Supported.Select(KernelPaths.Name))}");
        string? forced = Environment.GetEnvironmentVariable(KernelPaths.EnvironmentVariable);
        lines.Add($"kernel path: {KernelPaths.Name(KernelPaths.Default)}{(string.IsNullOrWhiteSpace(forced) ? "" : $" (forced by {KernelPaths.EnvironmentVariable}={forced})")}");
        return string.Join(Environment.NewLine, lines);
    }

    private static int Print(TextWriter output, string text)
    {
        output.WriteLine(text);
        return ExitOk;
    }

    private static int Fail(TextWriter error, int code, string message)
    {
        error.WriteLine($"edgeslm: {message}");
        return code;
    }
}
