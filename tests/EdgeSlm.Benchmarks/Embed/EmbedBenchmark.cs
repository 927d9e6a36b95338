using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Benchmarks.Embed;

/// <summary>What one engine measured in its own process.</summary>
/// <param name="ThreadPlan">EdgeSlm's threads per input length, when it chose them (<c>edgeslm-chosen</c>).</param>
internal sealed record EmbedResult(string Engine, int Threads, double LoadMs, double MedianMs, double P99Ms, double MeanMs, double PeakRssMiB, int Utterances, double MeanTokens, string? ThreadPlan = null);

/// <summary>
/// Single-utterance embedding latency (batch 1) of EdgeSlm on its q4_0 GGUF, ONNX Runtime fp32 on the same ONNX
/// file and llama.cpp on the same GGUF, at each thread count. Each engine runs in a child process of its own, so
/// its load time and peak RSS are its own; the parent prints one table with the ratios. <c>edgeslm-chosen</c> is
/// EdgeSlm as the module runs it: a pool of that many threads, and per pass the count its start-up measurement
/// chose for the pass's length (<see cref="EncoderThreadPlan.Measure"/>, in its load time).
/// </summary>
internal static class EmbedBenchmark
{
    public const string Engines = "edgeslm,edgeslm-chosen,onnxruntime,llama.cpp";

    public static int Run(IReadOnlyList<int> threads, bool quick, string? output, string? modelPath, string engines = Engines)
    {
        modelPath ??= ConvertDefaultModel();
        var results = new List<EmbedResult>();
        int expected = 0;
        foreach (int count in threads)
        {
            // With one thread there is nothing to choose.
            foreach (string engine in engines.Split(',').Where(e => count > 1 || e != "edgeslm-chosen"))
            {
                expected++;
                EmbedResult? result = RunChild(engine, count, quick, modelPath);
                if (result is not null)
                {
                    results.Add(result);
                    Console.Error.WriteLine($"  {engine}, {count} thread(s): median {result.MedianMs:F3} ms");
                }
            }
        }
        string table = Table(results, modelPath);
        Console.WriteLine(table);
        if (output is not null)
        {
            File.WriteAllText(output, table);
        }
        return results.Count == expected ? 0 : 1;
    }

    /// <summary>The child side: load, warm up, time each utterance, report one JSON line.</summary>
    public static int Worker(string engine, int threads, bool quick, string modelPath)
    {
        string[] sentences = Utterances(quick ? 60 : 200);
        var clock = Stopwatch.StartNew();
        using IEmbedder embedder = engine switch
        {
            "edgeslm" => new EdgeSlmEmbedder(modelPath, threads, choose: false),
            "edgeslm-chosen" => new EdgeSlmEmbedder(modelPath, threads, choose: true),
            "onnxruntime" => new OnnxRuntimeEmbedder(threads),
            "llama.cpp" => new LlamaCppEmbedder(modelPath, threads),
            _ => throw new ArgumentException($"unknown engine {engine}"),
        };
        double loadMs = clock.Elapsed.TotalMilliseconds;

        for (int round = 0; round < 2; round++)
        {
            foreach (string sentence in sentences.Take(40)) embedder.Embed(sentence);
        }
        var times = new List<double>();
        int repeats = quick ? 1 : 3;
        for (int r = 0; r < repeats; r++)
        {
            foreach (string sentence in sentences)
            {
                long start = Stopwatch.GetTimestamp();
                embedder.Embed(sentence);
                times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
        times.Sort();
        var result = new EmbedResult(engine, threads, loadMs, times[times.Count / 2], times[(int)(times.Count * 0.99)], times.Average(),
            PeakRssMiB(), sentences.Length, sentences.Average(s => embedder.TokenCount(s)), (embedder as EdgeSlmEmbedder)?.ChosenPlan);
        Console.WriteLine(JsonSerializer.Serialize(result, EmbedJson.Default.EmbedResult));
        return 0;
    }

    private static EmbedResult? RunChild(string engine, int threads, bool quick, string modelPath)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(EmbedBenchmark).Assembly.Location);
        }
        foreach (string arg in new[] { "embed-worker", "--engine", engine, "--threads", threads.ToString(CultureInfo.InvariantCulture), "--model", modelPath })
        {
            start.ArgumentList.Add(arg);
        }
        if (quick) start.ArgumentList.Add("--quick");
        using Process process = Process.Start(start)!;
        string stdout = process.StandardOutput.ReadToEnd();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        string? line = stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (process.ExitCode != 0 || line is null)
        {
            Console.Error.WriteLine($"{engine} ({threads} threads) failed with exit code {process.ExitCode}:\n{stderr}");
            return null;
        }
        return JsonSerializer.Deserialize(line, EmbedJson.Default.EmbedResult);
    }

    private static string Table(List<EmbedResult> results, string modelPath)
    {
        var text = new StringBuilder();
        text.AppendLine($"Embedding latency, batch 1, {results.FirstOrDefault()?.Utterances} utterances of 5 to 20 tokens (mean {results.FirstOrDefault()?.MeanTokens:F1} tokens by our tokenizer)");
        text.AppendLine($"model: {Path.GetFileName(modelPath)} (EdgeSlm, llama.cpp); the bundled fp32 ONNX (ONNX Runtime); {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}");
        text.AppendLine();
        text.AppendLine("| engine | threads | load ms | median ms | p99 ms | mean ms | peak RSS MiB | median vs EdgeSlm |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (EmbedResult r in results)
        {
            EmbedResult? ours = results.FirstOrDefault(o => o.Engine == "edgeslm" && o.Threads == r.Threads);
            string ratio = ours is null ? "-" : $"{r.MedianMs / ours.MedianMs:F2}x";
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Engine} | {r.Threads} | {r.LoadMs:F1} | {r.MedianMs:F3} | {r.P99Ms:F3} | {r.MeanMs:F3} | {r.PeakRssMiB:F1} | {ratio} |"));
        }
        foreach (EmbedResult r in results.Where(r => r.ThreadPlan is not null))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"edgeslm-chosen, pool of {r.Threads}: {r.ThreadPlan}");
        }
        return text.ToString();
    }

    internal static string ConvertDefaultModel()
    {
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-bench-minilm-q4_0.gguf");
        if (!File.Exists(path))
        {
            BundledModel bundled = BundledModel.MiniLM;
            OnnxToGguf.ConvertTo(path, OnnxModel.Read(bundled.ReadOnnx()), bundled.ReadVocabulary(), bundled.DisplayName, bundled.Pooling, TensorTypes.For(QuantType.Q4_0));
        }
        return path;
    }

    /// <summary>Utterances of 5 to 20 tokens from the four datasets' train files, the same every run.</summary>
    internal static string[] Utterances(int count)
    {
        string datasets = Path.Combine(RepositoryRoot(), "tests", "data");
        var tokenizer = new WordPieceTokenizer(BundledModel.MiniLM.ReadVocabulary(), 512);
        var result = new List<string>();
        foreach (string file in new[] { "snips2017", "hwu64", "clinc150", "ha_intents_en" })
        {
            string[] lines = File.ReadAllLines(Path.Combine(datasets, file, "train.jsonl"));
            int taken = 0;
            for (int i = 0; i < lines.Length && taken < count / 4; i += 7)
            {
                string text = JsonDocument.Parse(lines[i]).RootElement.GetProperty("text").GetString()!.Trim();
                int tokens = tokenizer.Encode(text).Length;
                if (tokens is >= 5 and <= 20)
                {
                    result.Add(text);
                    taken++;
                }
            }
        }
        return result.ToArray();
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "EdgeSlm.sln"))) return d.FullName;
        }
        throw new DirectoryNotFoundException("no EdgeSlm.sln above the benchmark");
    }

    /// <summary>VmHWM: the most resident memory this process has had.</summary>
    private static double PeakRssMiB()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
            }
        }
        return double.NaN;
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(EmbedResult))]
internal sealed partial class EmbedJson : System.Text.Json.Serialization.JsonSerializerContext;
