using System.Diagnostics;
using System.Globalization;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Benchmarks.Slm;

/// <summary>
/// <c>slm [--shapes smollm2-135m,qwen2.5-0.5b] [--intents 15,60] [--threads 1,2] [--requests N]</c>: the language
/// model's fallback path on synthetic Q4_0 files of the decoder benchmark's shapes. Intents are HWU64's (names, two
/// examples each, from the train file); requests are other HWU64 sentences of 5 to 20 tokens. Reports the prompt's
/// build time per intents version and the per-request latency (p50, p99) of <see cref="SlmRecognizer.Recognize"/>,
/// split into requests the model answers with an intent that has slots to generate and those it does not.
/// </summary>
public static class SlmBenchmark
{
    public static int Run(string[] args)
    {
        string[] shapes = ["smollm2-135m", "qwen2.5-0.5b"];
        int[] intentCounts = [15, 60];
        int[] threads = [1, 2];
        int requests = 40;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--shapes" when i + 1 < args.Length: shapes = args[++i].Split(','); break;
                case "--intents" when i + 1 < args.Length: intentCounts = args[++i].Split(',').Select(int.Parse).ToArray(); break;
                case "--threads" when i + 1 < args.Length: threads = args[++i].Split(',').Select(int.Parse).ToArray(); break;
                case "--requests" when i + 1 < args.Length: requests = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"slm: unknown argument {args[i]}"); return 2;
            }
        }
        List<IntentExample> hwu = IntentExample.ReadJsonLines(DatasetSentences.TrainFile("hwu64"));
        Console.WriteLine($"# slm fallback benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine("| shape | intents | threads | prompt tokens | prompt build ms | request tokens (mean) | p50 ms | p99 ms | 12-token requests p50 ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (string shapeName in shapes)
        {
            DecoderShape shape = shapeName switch
            {
                "smollm2-135m" => DecoderShape.SmolLM2_135M,
                "qwen2.5-0.5b" => DecoderShape.Qwen25_05B,
                _ => throw new ArgumentException($"unknown shape {shapeName}"),
            };
            using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(shape, QuantType.Q4_0));
            DecoderTokenizer tokenizer = model.CreateTokenizer();
            foreach (int count in intentCounts)
            {
                string[] names = hwu.Select(e => e.Intent).Distinct().Order(StringComparer.Ordinal).Take(count).ToArray();
                string file = Path.Combine(Path.GetTempPath(), $"edgeslm-slm-bench-{count}.jsonl");
                File.WriteAllLines(file, names.SelectMany(n => hwu.Where(e => e.Intent == n).Take(2))
                    .Select(e => System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["text"] = e.Text, ["intent"] = e.Intent }, BenchmarkJson.Default.DictionaryStringString)));
                IntentDefinitions definitions = IntentDefinitions.Load(file);
                string[] texts = hwu.Where(e => names.Contains(e.Intent)).Skip(2 * count)
                    .Select(e => e.Text).Where(t => tokenizer.Encode(t, addSpecial: false).Length is >= 5 and <= 20).Take(requests).ToArray();
                foreach (int t in threads)
                {
                    using SlmRecognizer recognizer = SlmRecognizer.Build(model, tokenizer, definitions, new SlmOptions(Threads: t));
                    recognizer.Recognize(texts[0]); // warm-up
                    var times = new List<double>();
                    var twelve = new List<double>();
                    foreach (string text in texts)
                    {
                        long start = Stopwatch.GetTimestamp();
                        recognizer.Recognize(text);
                        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                        times.Add(ms);
                        if (tokenizer.Encode(text, addSpecial: false).Length is >= 11 and <= 13) twelve.Add(ms);
                    }
                    double meanTokens = texts.Average(x => tokenizer.Encode(x, addSpecial: false).Length);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {shapeName} | {count} | {t} | {recognizer.PromptTokens} | {recognizer.PromptSeconds * 1000:F0} | {meanTokens:F1} | {Percentile(times, 0.5):F1} | {Percentile(times, 0.99):F1} | {(twelve.Count > 0 ? Percentile(twelve, 0.5).ToString("F1", CultureInfo.InvariantCulture) : "-")} |"));
                }
            }
        }
        return 0;
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class BenchmarkJson : System.Text.Json.Serialization.JsonSerializerContext;
