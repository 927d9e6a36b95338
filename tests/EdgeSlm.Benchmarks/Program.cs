using System.Globalization;
using EdgeSlm.Benchmarks.Decoder;
using EdgeSlm.Benchmarks.Embed;
using EdgeSlm.Benchmarks.Kernels;
using EdgeSlm.Benchmarks.Module;
using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Benchmarks;

/// <summary>
/// dotnet run -c Release --project tests/EdgeSlm.Benchmarks -- kernels [--threads 1,2] [--quick] [--out FILE] [--ggml VARIANT]
/// </summary>
internal static class Program
{
    private const string Usage =
        """
        usage: EdgeSlm.Benchmarks kernels [--threads 1,2] [--shapes 384x384,...] [--quick] [--out FILE] [--ggml avx512|avx2|avx|noavx]
               EdgeSlm.Benchmarks embed [--threads 1,2] [--quick] [--out FILE] [--model FILE.gguf] [--engines edgeslm,edgeslm-chosen,onnxruntime,llama.cpp]
               EdgeSlm.Benchmarks embed-stages [--threads 1] [--rounds 20] [--tokens 9-12] [--model FILE.gguf]
               EdgeSlm.Benchmarks kernel-ab   (two kernels interleaved in one process, set by environment:
                                                KERNEL_AB_KERNELS=avx2,avx512, KERNEL_AB_TENSORS, KERNEL_AB_TOKENS,
                                                KERNEL_AB_FORWARD=N for whole forward passes; see Kernels/KernelAb.cs)
               EdgeSlm.Benchmarks quantizer-ab (the activation quantizer's tiers interleaved, ns per block)
               EdgeSlm.Benchmarks attention-ab (the attention kernel's tiers interleaved, µs per sentence and layer)
               EdgeSlm.Benchmarks decoder [--shapes smollm2-135m,qwen2.5-0.5b] [--threads 1,2] [--prompt 64] [--generate 64] [--rounds 5]
                                          [--types q4_0|q4_k_m|...] [--repeat N] [--no-sid] [--out FILE]
                                              (EdgeSlm's decoder against LLamaSharp's llama.cpp and Debian sid's llama-bench
                                               (llama-sid.sh) on synthetic files, with load time, peak RSS and the weight
                                               bytes/s of generation against measured memory bandwidth; Decoder/DecoderBenchmark.cs)
               EdgeSlm.Benchmarks slm [--shapes smollm2-135m,qwen2.5-0.5b] [--intents 15,60] [--threads 1,2] [--requests 40]
                                              (the language model fallback path: prompt build, per-request p50/p99; Slm/SlmBenchmark.cs)
               EdgeSlm.Benchmarks module [--threads 1,2] [--count 10000] [--sustain-seconds 60] [--out FILE]

          module         the module (edgeslm run, a child process) through a real mosquitto, per thread count: a burst
                         of --count transcripts (throughput, latency p50/p99/max, idle and peak RSS, anything shed),
                         then the highest steady rate it keeps up with (10 s trials) held for --sustain-seconds (0: skip)

          embed          sentence-embedding latency (batch 1), load time and peak RSS: EdgeSlm on its q4_0 GGUF,
                         ONNX Runtime fp32 on the bundled ONNX, llama.cpp on the same GGUF, each in its own process;
                         edgeslm-chosen: EdgeSlm with the threads per input length it measures at load, as the module
          --model        the GGUF for EdgeSlm and llama.cpp (default: the bundled MiniLM converted to q4_0)

          embed-stages   EdgeSlm's forward pass timed stage by stage (embeddings, quantization, each projection,
                         attention, GELU, LayerNorm, ...), median and minimum µs per utterance over rounds

          kernels        Q4_0 GEMV and GEMM: our QuantMatMul vs llama.cpp's ggml vs f32, as a markdown table
          --threads      thread counts to measure, comma-separated (default 1,2)
          --shapes       rows x k of the weight matrices (default 384x384,1536x384,384x1536,4096x4096)
          --quick        shorter timing (50 ms per case instead of 250 ms)
          --out FILE     also write the table to FILE
          --ggml         x64 build of libggml-cpu.so to load (default: the best this CPU runs)
        """;

    private static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        if (args[0] == "decoder")
        {
            return Decoder.DecoderBenchmark.Run(args);
        }
        if (args[0] == "slm")
        {
            return Slm.SlmBenchmark.Run(args);
        }
        if (args[0] == "decoder-worker")
        {
            return Decoder.DecoderBenchmark.Worker(args);
        }
        if (args[0] == "kernel-ab")
        {
            return Kernels.KernelAb.Run();
        }
        if (args[0] == "attention-ab")
        {
            return Kernels.AttentionAb.Run();
        }
        if (args[0] == "quantizer-ab")
        {
            return Kernels.QuantizerAb.Run();
        }
        if (args[0] == "jit-kernels")
        {
            return Kernels.JitKernels.Run();
        }
        if (args[0] == "embed-stages")
        {
            int stageThreads = 1, rounds = 20, minTokens = 9, maxTokens = 12;
            string? stageModel = null;
            for (int i = 1; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--threads" when i + 1 < args.Length: stageThreads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                    case "--rounds" when i + 1 < args.Length: rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                    case "--tokens" when i + 1 < args.Length:
                        string[] range = args[++i].Split('-');
                        minTokens = int.Parse(range[0], CultureInfo.InvariantCulture);
                        maxTokens = int.Parse(range[^1], CultureInfo.InvariantCulture);
                        break;
                    case "--model" when i + 1 < args.Length: stageModel = args[++i]; break;
                    default: return Fail($"embed-stages: unknown argument '{args[i]}'");
                }
            }
            return Embed.StageProfile.Run(stageThreads, rounds, stageModel, minTokens, maxTokens);
        }
        if (args[0] is "embed" or "embed-worker")
        {
            return RunEmbed(args);
        }
        if (args[0] == "module")
        {
            IReadOnlyList<int> moduleThreads = [1, 2];
            int count = 10_000;
            int sustainSeconds = 60;
            string? moduleOutput = null;
            for (int i = 1; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "--threads" when i + 1 < args.Length:
                        moduleThreads = ParseThreads(args[++i]) ?? throw new ArgumentException($"bad --threads '{args[i]}'");
                        break;
                    case "--count" when i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n > 0:
                        count = n;
                        i++;
                        break;
                    case "--sustain-seconds" when i + 1 < args.Length && int.TryParse(args[i + 1], out int seconds) && seconds >= 0:
                        sustainSeconds = seconds;
                        i++;
                        break;
                    case "--out" when i + 1 < args.Length:
                        moduleOutput = args[++i];
                        break;
                    default:
                        return Fail($"module: unknown argument '{args[i]}'");
                }
            }
            return Module.ModuleThroughput.Run(moduleThreads, count, sustainSeconds, moduleOutput);
        }
        if (args[0] != "kernels")
        {
            return Fail($"unknown benchmark '{args[0]}'");
        }

        IReadOnlyList<int> threads = [1, 2];
        IReadOnlyList<(int Rows, int K)> shapes = KernelBenchmark.DefaultShapes;
        bool quick = false;
        string? output = null, ggmlVariant = null;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--threads" when i + 1 < args.Length:
                    int[]? parsed = ParseThreads(args[++i]);
                    if (parsed is null)
                    {
                        return Fail($"--threads takes comma-separated counts from 1 to 64, not '{args[i]}'");
                    }
                    threads = parsed;
                    break;
                case "--shapes" when i + 1 < args.Length:
                    (int, int)[]? parsedShapes = ParseShapes(args[++i]);
                    if (parsedShapes is null)
                    {
                        return Fail($"--shapes takes comma-separated ROWSxK with K a multiple of 32, not '{args[i]}'");
                    }
                    shapes = parsedShapes;
                    break;
                case "--out" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--ggml" when i + 1 < args.Length:
                    ggmlVariant = args[++i];
                    break;
                default:
                    return Fail($"unknown or incomplete option '{args[i]}'");
            }
        }
        return KernelBenchmark.Run(new KernelBenchmarkOptions(threads, shapes, quick, output, ggmlVariant));
    }

    private static int RunEmbed(string[] args)
    {
        IReadOnlyList<int> threads = [1, 2];
        bool quick = false;
        string? output = null, model = null, engine = null, engines = null;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick": quick = true; break;
                case "--threads" when i + 1 < args.Length:
                    threads = ParseThreads(args[++i]) ?? throw new ArgumentException($"--threads: '{args[i]}'");
                    break;
                case "--out" when i + 1 < args.Length: output = args[++i]; break;
                case "--model" when i + 1 < args.Length: model = args[++i]; break;
                case "--engine" when i + 1 < args.Length: engine = args[++i]; break;
                case "--engines" when i + 1 < args.Length: engines = args[++i]; break;
                default: return Fail($"unknown or incomplete option '{args[i]}'");
            }
        }
        return args[0] == "embed-worker"
            ? Embed.EmbedBenchmark.Worker(engine ?? "edgeslm", threads[0], quick, model ?? throw new ArgumentException("--model is required"))
            : Embed.EmbedBenchmark.Run(threads, quick, output, model, engines ?? Embed.EmbedBenchmark.Engines);
    }

    private static int[]? ParseThreads(string text)
    {
        var counts = new List<int>();
        foreach (string part in text.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1 || count > 64)
            {
                return null;
            }
            counts.Add(count);
        }
        return counts.Count > 0 ? counts.Distinct().ToArray() : null;
    }

    private static (int, int)[]? ParseShapes(string text)
    {
        var shapes = new List<(int, int)>();
        foreach (string part in text.Split(','))
        {
            string[] sides = part.Split('x');
            if (sides.Length != 2
                || !int.TryParse(sides[0], NumberStyles.None, CultureInfo.InvariantCulture, out int rows)
                || !int.TryParse(sides[1], NumberStyles.None, CultureInfo.InvariantCulture, out int k)
                || rows < 1 || k < 32 || k % 32 != 0 || (long)rows * k > 1L << 28)
            {
                return null;
            }
            shapes.Add((rows, k));
        }
        return shapes.Count > 0 ? shapes.ToArray() : null;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"EdgeSlm.Benchmarks: {message}");
        Console.Error.WriteLine(Usage);
        return 2;
    }
}
