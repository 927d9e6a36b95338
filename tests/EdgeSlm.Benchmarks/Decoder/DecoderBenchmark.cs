using System.Diagnostics;
using System.Globalization;
using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;
using LLama.Common;
using LLama.Native;
using LLama;

namespace EdgeSlm.Benchmarks.Decoder;

/// <summary>
/// Prompt processing and generation speed of EdgeSlm's decoder against llama.cpp (LLamaSharp 0.30.0's CPU backend,
/// its default context settings) on the same synthetic Q4_0 files of benchmark shapes (GPT-2's 50k vocabulary):
/// a prompt of P tokens in one batch, then G greedy tokens one at a time, per thread count. Each engine runs
/// several rounds in turn; the table gives each one's best round (the least disturbed on a shared machine) and
/// the median.
/// </summary>
internal static class DecoderBenchmark
{
    public static int Run(string[] args)
    {
        int[] threads = [1, 2];
        string[] shapes = ["smollm2-135m", "qwen2.5-0.5b"];
        int promptLength = 64, generate = 64, rounds = 5;
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-bench");
        string? output = null;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads" when i + 1 < args.Length: threads = args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--shapes" when i + 1 < args.Length: shapes = args[++i].Split(','); break;
                case "--prompt" when i + 1 < args.Length: promptLength = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--generate" when i + 1 < args.Length: generate = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds" when i + 1 < args.Length: rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--dir" when i + 1 < args.Length: directory = args[++i]; break;
                case "--out" when i + 1 < args.Length: output = args[++i]; break;
                default: Console.Error.WriteLine($"decoder: unknown argument '{args[i]}'"); return 2;
            }
        }
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            if (level is LLamaLogLevel.Error) Console.Error.Write(message);
        });

        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Q4_0, prompt {promptLength} tokens, generation {generate} tokens, {rounds} rounds per engine: best (median) tokens/s; ratio of bests, EdgeSlm / llama.cpp.");
        table.AppendLine();
        table.AppendLine("| shape | threads | EdgeSlm prompt | llama.cpp prompt | ratio | EdgeSlm generation | llama.cpp generation | ratio | EdgeSlm load ms | llama.cpp load ms |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (string name in shapes)
        {
            DecoderShape shape = name switch
            {
                "smollm2-135m" => DecoderShape.SmolLM2_135M,
                "qwen2.5-0.5b" => DecoderShape.Qwen25_05B,
                "tiny" => DecoderShape.TinyLlama(),
                _ => throw new ArgumentException($"unknown shape '{name}' (smollm2-135m, qwen2.5-0.5b, tiny)"),
            };
            string path = Path.Combine(directory, $"{name}-q4_0-v{SyntheticDecoder.GeneratorVersion}.gguf");
            if (!File.Exists(path))
            {
                Console.Error.WriteLine($"writing {path} ...");
                SyntheticDecoder.Write(path, shape, QuantType.Q4_0);
            }
            var random = new Random(64);
            int[] prompt = Enumerable.Range(0, promptLength).Select(_ => random.Next(Gpt2Vocabulary.EndOfTextId)).ToArray();
            foreach (int t in threads)
            {
                (Result ours, double ourLoad) = Ours(path, prompt, generate, rounds, t);
                (Result theirs, double theirLoad) = LlamaCpp(path, prompt, generate, rounds, t);
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {t} | {ours.BestPrompt:F0} ({ours.MedianPrompt:F0}) | {theirs.BestPrompt:F0} ({theirs.MedianPrompt:F0}) | {ours.BestPrompt / theirs.BestPrompt:F2} | {ours.BestGeneration:F1} ({ours.MedianGeneration:F1}) | {theirs.BestGeneration:F1} ({theirs.MedianGeneration:F1}) | {ours.BestGeneration / theirs.BestGeneration:F2} | {ourLoad:F0} | {theirLoad:F0} |");
                table.AppendLine(line);
                Console.Error.WriteLine(line);
            }
        }
        Console.WriteLine(table);
        if (output is not null) File.WriteAllText(output, table.ToString());
        return 0;
    }

    private sealed record Result(double BestPrompt, double MedianPrompt, double BestGeneration, double MedianGeneration);

    private static Result Summarise(List<double> promptSeconds, List<double> generationSeconds, int promptLength, int generated)
    {
        static double Median(List<double> v) { var s = v.Order().ToList(); return s[s.Count / 2]; }
        return new Result(promptLength / promptSeconds.Min(), promptLength / Median(promptSeconds),
            generated / generationSeconds.Min(), generated / Median(generationSeconds));
    }

    private static (Result, double) Ours(string path, int[] prompt, int generate, int rounds, int threads)
    {
        long start = Stopwatch.GetTimestamp();
        using LlamaModel model = LlamaModel.Load(path);
        using var decoder = new LlamaDecoder(model, context: prompt.Length + generate + 1, threads, batchSize: prompt.Length);
        double load = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var logits = new float[model.Config.VocabularySize];
        var promptTimes = new List<double>();
        var generationTimes = new List<double>();
        for (int round = -1; round < rounds; round++) // round -1 warms up (JIT, caches, pool)
        {
            decoder.Reset();
            start = Stopwatch.GetTimestamp();
            decoder.Prefill(prompt, logits);
            double p = Stopwatch.GetElapsedTime(start).TotalSeconds;
            start = Stopwatch.GetTimestamp();
            for (int i = 0; i < generate; i++)
            {
                decoder.Decode(TokenSampler.ArgMax(logits), logits);
            }
            double g = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (round >= 0) { promptTimes.Add(p); generationTimes.Add(g); }
        }
        return (Summarise(promptTimes, generationTimes, prompt.Length, generate), load);
    }

    private static (Result, double) LlamaCpp(string path, int[] prompt, int generate, int rounds, int threads)
    {
        long start = Stopwatch.GetTimestamp();
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)(prompt.Length + generate + 1),
            BatchSize = (uint)prompt.Length,
            UBatchSize = (uint)prompt.Length,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
        };
        using LLamaWeights weights = LLamaWeights.LoadFromFile(parameters);
        using LLamaContext context = weights.CreateContext(parameters);
        double load = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var batch = new LLamaBatch();
        var promptTimes = new List<double>();
        var generationTimes = new List<double>();
        for (int round = -1; round < rounds; round++)
        {
            context.NativeHandle.MemoryClear(true);
            batch.Clear();
            for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
            start = Stopwatch.GetTimestamp();
            Check(context.NativeHandle.Decode(batch));
            int next = TokenSampler.ArgMax(context.NativeHandle.GetLogitsIth(prompt.Length - 1));
            double p = Stopwatch.GetElapsedTime(start).TotalSeconds;
            start = Stopwatch.GetTimestamp();
            for (int i = 0; i < generate; i++)
            {
                batch.Clear();
                batch.Add(next, prompt.Length + i, LLamaSeqId.Zero, true);
                Check(context.NativeHandle.Decode(batch));
                next = TokenSampler.ArgMax(context.NativeHandle.GetLogitsIth(0));
            }
            double g = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (round >= 0) { promptTimes.Add(p); generationTimes.Add(g); }
        }
        return (Summarise(promptTimes, generationTimes, prompt.Length, generate), load);
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
    }
}
