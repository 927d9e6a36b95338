using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeSlm.Kernels.Conversion;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;
using LLama.Common;
using LLama.Native;
using LLama;

namespace EdgeSlm.Benchmarks.Decoder;

/// <summary>
/// Prompt processing and generation speed of EdgeSlm's decoder against two llama.cpp builds on the same synthetic
/// files of benchmark shapes (GPT-2's 50k vocabulary; Q4_0 unless --types says otherwise): LLamaSharp 0.30.0's CPU
/// backend (its default context settings) and Debian sid's llama-bench (build 11669, through llama-sid.sh, its
/// default settings). A prompt of P tokens in one batch, then G tokens one at a time, per thread count; the table
/// gives each engine's best round (the least disturbed on a shared machine) and the median, the ratio of
/// EdgeSlm's best to the faster peer's, load time, peak RSS, and the weight bytes per second generation reaches
/// against the machine's measured read bandwidth. EdgeSlm and LLamaSharp each run in a child process of this
/// benchmark (decoder-worker), so that VmHWM is theirs alone; llama-bench runs under /usr/bin/time -v.
/// </summary>
internal static class DecoderBenchmark
{
    public static int Run(string[] args)
    {
        int[] threads = [1, 2];
        string[] shapes = ["smollm2-135m", "qwen2.5-0.5b"];
        int promptLength = 64, generate = 64, rounds = 5, repeat = 1;
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-bench");
        string? output = null;
        string types = "q4_0";
        bool sid = true;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads" when i + 1 < args.Length: threads = args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--shapes" when i + 1 < args.Length: shapes = args[++i].Split(','); break;
                case "--prompt" when i + 1 < args.Length: promptLength = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--generate" when i + 1 < args.Length: generate = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds" when i + 1 < args.Length: rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--repeat" when i + 1 < args.Length: repeat = Math.Max(1, int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--types" when i + 1 < args.Length: types = args[++i]; break;
                case "--no-sid": sid = false; break;
                case "--dir" when i + 1 < args.Length: directory = args[++i]; break;
                case "--out" when i + 1 < args.Length: output = args[++i]; break;
                default: Console.Error.WriteLine($"decoder: unknown argument '{args[i]}'"); return 2;
            }
        }
        WeightTypes weightTypes = WeightTypes.Parse(types);
        string? sidScript = sid ? SidScript() : null;

        var bandwidth = new Dictionary<int, (double Read, double Copy)>();
        foreach (int t in threads)
        {
            bandwidth[t] = MemoryBandwidth.Measure(t);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"memory bandwidth, {t} thread(s): read {bandwidth[t].Read:F1} GB/s, copy {bandwidth[t].Copy:F1} GB/s"));
        }

        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"{weightTypes.Name}, prompt {promptLength} tokens, generation {generate} tokens, {rounds} rounds per engine{(repeat > 1 ? $", the engines in turn {repeat} times" : "")}: best (median) tokens/s. Peers: LLamaSharp 0.30.0 (\"sharp\"), Debian sid llama-bench build 11669 (\"sid\"); ratio = EdgeSlm's best / the faster peer's best.");
        table.AppendLine(CultureInfo.InvariantCulture, $"Memory bandwidth (read, STREAM-like, 256 MiB): {string.Join(", ", threads.Select(t => string.Create(CultureInfo.InvariantCulture, $"{bandwidth[t].Read:F1} GB/s at {t} thread(s)")))}.");
        table.AppendLine();
        table.AppendLine("| shape | threads | EdgeSlm prompt | sharp prompt | sid prompt | ratio | EdgeSlm generation | sharp generation | sid generation | ratio | load ms EdgeSlm / sharp | peak RSS MiB EdgeSlm / sharp / sid | generation weight GB/s EdgeSlm / faster peer (% of read bandwidth) |");
        table.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var converted = new List<string>();
        foreach (string name in shapes)
        {
            DecoderShape shape = name switch
            {
                "smollm2-135m" => DecoderShape.SmolLM2_135M,
                "qwen2.5-0.5b" => DecoderShape.Qwen25_05B,
                "tiny" => DecoderShape.TinyLlama(),
                _ => throw new ArgumentException($"unknown shape '{name}' (smollm2-135m, qwen2.5-0.5b, tiny)"),
            };
            // Q4_0 files keep their old names, so files written by earlier runs are reused.
            string path = Path.Combine(directory, $"{name}-{weightTypes.Name}-v{SyntheticDecoder.GeneratorVersion}.gguf");
            if (!File.Exists(path))
            {
                Console.Error.WriteLine($"writing {path} ...");
                SyntheticDecoder.Write(path, shape, weightTypes);
            }
            (long ourBytes, long storedBytes) = WeightBytesPerToken(path);
            foreach (int t in threads)
            {
                // The VM's speed drifts over minutes (every engine 20-30% slower for a while, then faster): with
                // --repeat the three engines run in turn that many times and each keeps its best, so that no
                // engine's figure comes only from a slow stretch.
                var ourRuns = new List<WorkerResult?>();
                var sharpRuns = new List<WorkerResult?>();
                var sidRuns = new List<WorkerResult?>();
                for (int r = 0; r < repeat; r++)
                {
                    ourRuns.Add(Child("edgeslm", path, t, promptLength, generate, rounds));
                    sharpRuns.Add(Child("llamasharp", path, t, promptLength, generate, rounds));
                    sidRuns.Add(sidScript is null ? null : Sid(sidScript, path, t, promptLength, generate, rounds));
                }
                WorkerResult? ours = Best(ourRuns), sharp = Best(sharpRuns), theirs = Best(sidRuns);
                double peerPrompt = Math.Max(sharp?.BestPrompt ?? 0, theirs?.BestPrompt ?? 0);
                double peerGeneration = Math.Max(sharp?.BestGeneration ?? 0, theirs?.BestGeneration ?? 0);
                double read = bandwidth[t].Read;
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {t} | {Speed(ours?.BestPrompt, ours?.MedianPrompt, "F0")} | {Speed(sharp?.BestPrompt, sharp?.MedianPrompt, "F0")} | {Speed(theirs?.BestPrompt, theirs?.MedianPrompt, "F0")} | {Ratio(ours?.BestPrompt, peerPrompt)} " +
                    $"| {Speed(ours?.BestGeneration, ours?.MedianGeneration, "F1")} | {Speed(sharp?.BestGeneration, sharp?.MedianGeneration, "F1")} | {Speed(theirs?.BestGeneration, theirs?.MedianGeneration, "F1")} | {Ratio(ours?.BestGeneration, peerGeneration)} " +
                    $"| {Number(ours?.LoadMs, "F0")} / {Number(sharp?.LoadMs, "F0")} | {Number(ours?.PeakRssMiB, "F0")} / {Number(sharp?.PeakRssMiB, "F0")} / {Number(theirs?.PeakRssMiB, "F0")} " +
                    $"| {GigabytesPerSecond(ourBytes, ours?.BestGeneration, read)} / {GigabytesPerSecond(storedBytes, peerGeneration, read)} |");
                table.AppendLine(line);
                Console.Error.WriteLine(line);
                if (ours is { ConvertedMB: > 0 })
                {
                    converted.Add(string.Create(CultureInfo.InvariantCulture, $"{name}, {t} thread(s): {ours.ConvertedMB:F1} MB converted at load in {ours.ConversionMs:F0} ms of the {ours.LoadMs:F0} ms load"));
                }
            }
            if (ourBytes != storedBytes)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"({name}: EdgeSlm reads {ourBytes / 1e6:F1} MB of converted weights per token, llama.cpp {storedBytes / 1e6:F1} MB as stored.)");
            }
        }
        foreach (string c in converted) table.AppendLine(CultureInfo.InvariantCulture, $"({c}.)");
        table.AppendLine();
        table.AppendLine("Load time is from opening the file to a decoder ready to run (llama-bench does not report one); peak RSS is VmHWM of each engine's own process (EdgeSlm and LLamaSharp in a .NET child process, runtime included; llama-bench's maximum resident set from /usr/bin/time -v).");
        Console.WriteLine(table);
        if (output is not null) File.WriteAllText(output, table.ToString());
        return 0;
    }

    /// <summary>One engine's runs as one: the best speeds, the median of the medians, the fastest load, the largest RSS.</summary>
    private static WorkerResult? Best(List<WorkerResult?> runs)
    {
        WorkerResult[] done = runs.OfType<WorkerResult>().ToArray();
        if (done.Length == 0) return null;
        static double Median(IEnumerable<double> values)
        {
            double[] sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }
        return done[0] with
        {
            LoadMs = done.Min(r => r.LoadMs),
            BestPrompt = done.Max(r => r.BestPrompt),
            MedianPrompt = Median(done.Select(r => r.MedianPrompt)),
            BestGeneration = done.Max(r => r.BestGeneration),
            MedianGeneration = Median(done.Select(r => r.MedianGeneration)),
            PeakRssMiB = done.Max(r => r.PeakRssMiB),
        };
    }

    private static string Speed(double? best, double? median, string format) =>
        best is double b && median is double m ? $"{b.ToString(format, CultureInfo.InvariantCulture)} ({m.ToString(format, CultureInfo.InvariantCulture)})" : "—";

    private static string Ratio(double? ours, double peer) =>
        ours is double o && peer > 0 ? (o / peer).ToString("F2", CultureInfo.InvariantCulture) : "—";

    private static string Number(double? value, string format) =>
        value is double v && !double.IsNaN(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "—";

    private static string GigabytesPerSecond(long bytesPerToken, double? tokensPerSecond, double readBandwidth)
    {
        if (tokensPerSecond is not double tps || tps <= 0) return "—";
        double gbs = bytesPerToken * tps / 1e9;
        return string.Create(CultureInfo.InvariantCulture, $"{gbs:F1} ({100 * gbs / readBandwidth:F0} %)");
    }

    /// <summary>
    /// The weight bytes one generated token reads: every matrix the forward pass multiplies (the token embedding
    /// only when it is also the output; otherwise one row of it, not counted), as EdgeSlm holds them (converted
    /// types included) and as the file stores them.
    /// </summary>
    private static (long Ours, long Stored) WeightBytesPerToken(string path)
    {
        using GgufFile file = GgufFile.Open(path);
        bool tied = !file.TryGetTensor(LlamaGguf.Output, out _);
        long ours = 0, stored = 0;
        foreach (GgufTensorInfo t in file.Tensors.Where(t => t.Dimensions.Length == 2 && (tied || t.Name != LlamaGguf.TokenEmbedding)))
        {
            stored += t.ByteSize;
            ours += QuantTypeTraits.Of(t.Type).IsNative ? t.ByteSize : LoadConversion.ConvertedRowBytes(t.Type, t.Columns) * t.Rows;
        }
        return (ours, stored);
    }

    /// <param name="ConvertedMB">EdgeSlm: megabytes of matrices converted at load (storage-only types), held beside the mapping.</param>
    /// <param name="ConversionMs">EdgeSlm: the part of <paramref name="LoadMs"/> spent converting them.</param>
    internal sealed record WorkerResult(string Engine, double LoadMs, double BestPrompt, double MedianPrompt, double BestGeneration, double MedianGeneration, double PeakRssMiB,
        double ConvertedMB = 0, double ConversionMs = 0);

    /// <summary><c>decoder-worker --engine edgeslm|llamasharp --model FILE --threads N --prompt P --generate G --rounds R</c>: one engine in this process, a JSON line on stdout.</summary>
    public static int Worker(string[] args)
    {
        string engine = "edgeslm", model = "";
        int threads = 1, promptLength = 64, generate = 64, rounds = 5;
        for (int i = 1; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--engine": engine = args[i + 1]; break;
                case "--model": model = args[i + 1]; break;
                case "--threads": threads = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--prompt": promptLength = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--generate": generate = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"decoder-worker: unknown argument '{args[i]}'"); return 2;
            }
        }
        var random = new Random(64);
        int[] prompt = Enumerable.Range(0, promptLength).Select(_ => random.Next(Gpt2Vocabulary.EndOfTextId)).ToArray();
        (Result result, double load, double convertedMB, double conversionMs) = engine switch
        {
            "edgeslm" => Ours(model, prompt, generate, rounds, threads),
            "llamasharp" => LlamaCpp(model, prompt, generate, rounds, threads),
            _ => throw new ArgumentException($"unknown engine '{engine}'"),
        };
        var output = new WorkerResult(engine, load, result.BestPrompt, result.MedianPrompt, result.BestGeneration, result.MedianGeneration, PeakRssMiB(), convertedMB, conversionMs);
        Console.WriteLine(JsonSerializer.Serialize(output, DecoderJson.Default.WorkerResult));
        return 0;
    }

    private static WorkerResult? Child(string engine, string model, int threads, int promptLength, int generate, int rounds)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(DecoderBenchmark).Assembly.Location);
        }
        foreach (string arg in new[] { "decoder-worker", "--engine", engine, "--model", model, "--threads", $"{threads}", "--prompt", $"{promptLength}", "--generate", $"{generate}", "--rounds", $"{rounds}" })
        {
            start.ArgumentList.Add(arg);
        }
        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        string? line = stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (process.ExitCode != 0 || line is null)
        {
            Console.Error.WriteLine($"{engine} ({threads} threads) failed with exit code {process.ExitCode}:\n{stderr.Result}");
            return null;
        }
        return JsonSerializer.Deserialize(line, DecoderJson.Default.WorkerResult);
    }

    /// <summary>tests/EdgeSlm.Benchmarks/llama-sid.sh, its packages fetched (once) if they are not yet; null (and why) if that fails.</summary>
    private static string? SidScript()
    {
        string? script = null;
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null && script is null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "EdgeSlm.Benchmarks", "llama-sid.sh");
            if (File.Exists(candidate)) script = candidate;
        }
        if (script is null)
        {
            Console.Error.WriteLine("llama-sid.sh not found above the benchmark: the sid peer is left out");
            return null;
        }
        (int code, _, string stderr) = Run("bash", [script, "run", "llama-bench", "--version"]);
        if (code != 0)
        {
            Console.Error.WriteLine("fetching Debian sid's llama.cpp (llama-sid.sh fetch) ...");
            (code, _, stderr) = Run("bash", [script, "fetch"]);
            if (code != 0)
            {
                Console.Error.WriteLine($"llama-sid.sh fetch failed (exit {code}); the sid peer is left out:\n{stderr}");
                return null;
            }
        }
        return script;
    }

    /// <summary>llama-bench -p P -n G -t N -r R -o json under /usr/bin/time -v: each test's samples, and the peak RSS.</summary>
    private static WorkerResult? Sid(string script, string model, int threads, int promptLength, int generate, int rounds)
    {
        (int code, string stdout, string stderr) = Run("/usr/bin/time", ["-v", "bash", script, "bench", "-m", model, "-p", $"{promptLength}", "-n", $"{generate}", "-t", $"{threads}", "-r", $"{rounds}", "-o", "json"]);
        if (code != 0)
        {
            Console.Error.WriteLine($"sid llama-bench ({threads} threads) failed with exit code {code}:\n{string.Join('\n', stderr.Split('\n').Where(l => !l.Contains("failed to enumerate", StringComparison.Ordinal)))}");
            return null;
        }
        double[] promptSamples = [], generationSamples = [];
        using (JsonDocument json = JsonDocument.Parse(stdout))
        {
            foreach (JsonElement test in json.RootElement.EnumerateArray())
            {
                double[] samples = test.GetProperty("samples_ts").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                if (test.GetProperty("n_gen").GetInt32() == 0) promptSamples = samples;
                else generationSamples = samples;
            }
        }
        double peakKiB = double.NaN;
        foreach (string line in stderr.Split('\n'))
        {
            if (line.Contains("Maximum resident set size (kbytes):", StringComparison.Ordinal))
            {
                peakKiB = double.Parse(line[(line.LastIndexOf(':') + 1)..].Trim(), CultureInfo.InvariantCulture);
            }
        }
        static double Median(double[] v) { double[] s = [.. v.Order()]; return s.Length == 0 ? double.NaN : s[s.Length / 2]; }
        return new WorkerResult("sid", double.NaN, promptSamples.DefaultIfEmpty(double.NaN).Max(), Median(promptSamples),
            generationSamples.DefaultIfEmpty(double.NaN).Max(), Median(generationSamples), peakKiB / 1024);
    }

    private static (int Code, string Stdout, string Stderr) Run(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in arguments) start.ArgumentList.Add(a);
        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
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

    /// <summary>Each child warms up for at least this long before the measured rounds: tiered compilation moves the
    /// kernels to optimised code in the background during the first seconds of a .NET process.</summary>
    private const double WarmUpSeconds = 2;

    private sealed record Result(double BestPrompt, double MedianPrompt, double BestGeneration, double MedianGeneration);

    private static Result Summarise(List<double> promptSeconds, List<double> generationSeconds, int promptLength, int generated)
    {
        static double Median(List<double> v) { var s = v.Order().ToList(); return s[s.Count / 2]; }
        return new Result(promptLength / promptSeconds.Min(), promptLength / Median(promptSeconds),
            generated / generationSeconds.Min(), generated / Median(generationSeconds));
    }

    private static (Result, double, double, double) Ours(string path, int[] prompt, int generate, int rounds, int threads)
    {
        long start = Stopwatch.GetTimestamp();
        using LlamaModel model = LlamaModel.Load(path);
        using var decoder = new LlamaDecoder(model, context: prompt.Length + generate + 1, threads, batchSize: prompt.Length);
        double load = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var logits = new float[model.Config.VocabularySize];
        var promptTimes = new List<double>();
        var generationTimes = new List<double>();
        long warmUpStart = Stopwatch.GetTimestamp();
        for (int round = -1; round < rounds; round++)
        {
            // Negative rounds warm up (JIT and its tiering in this fresh process, caches, the pool): one, and
            // as many more as fit in WarmUpSeconds.
            if (round == 0 && Stopwatch.GetElapsedTime(warmUpStart).TotalSeconds < WarmUpSeconds) round = -1;
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
        return (Summarise(promptTimes, generationTimes, prompt.Length, generate), load, model.Weights.ConvertedBytes / 1e6, model.Weights.ConversionTime.TotalMilliseconds);
    }

    private static (Result, double, double, double) LlamaCpp(string path, int[] prompt, int generate, int rounds, int threads)
    {
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            if (level is LLamaLogLevel.Error) Console.Error.Write(message);
        });
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
        long warmUpStart = Stopwatch.GetTimestamp();
        for (int round = -1; round < rounds; round++)
        {
            if (round == 0 && Stopwatch.GetElapsedTime(warmUpStart).TotalSeconds < WarmUpSeconds) round = -1;
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
        return (Summarise(promptTimes, generationTimes, prompt.Length, generate), load, 0, 0);
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(DecoderBenchmark.WorkerResult))]
internal sealed partial class DecoderJson : System.Text.Json.Serialization.JsonSerializerContext;
