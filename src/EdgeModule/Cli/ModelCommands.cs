using System.Diagnostics;
using System.Globalization;
using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary><c>convert</c>, <c>info FILE.gguf</c> and <c>embed</c>.</summary>
internal static class ModelCommands
{
    public static int Convert(Arguments args, TextWriter output, TextWriter error)
    {
        string outputPath = args.RequiredOption("o");
        QuantType type = QuantTypeTraits.Parse(args.Option("type") ?? "q4_0").Type;
        if (!QuantTypeTraits.Of(type).IsNative)
        {
            throw new UsageException($"--type {QuantTypeTraits.Of(type).Name}: EdgeSlm reads this type but writes only f32, f16, q8_0 and q4_0");
        }
        bool plain = args.Flag("plain");
        string? bundledName = args.Option("bundled");
        byte[] onnx;
        string[] vocabulary;
        string name;
        Pooling pooling;
        if (bundledName is not null)
        {
            BundledModel bundled = BundledModel.Find(bundledName);
            onnx = bundled.ReadOnnx();
            vocabulary = bundled.ReadVocabulary();
            name = bundled.DisplayName;
            pooling = bundled.Pooling;
        }
        else
        {
            string onnxPath = args.RequiredOption("onnx");
            onnx = File.ReadAllBytes(onnxPath);
            vocabulary = File.ReadAllLines(args.RequiredOption("vocab")).Where(l => l.Length > 0).ToArray();
            name = Path.GetFileNameWithoutExtension(onnxPath);
            pooling = (args.Option("pooling") ?? "mean").ToLowerInvariant() switch
            {
                "mean" => Pooling.Mean,
                "cls" => Pooling.Cls,
                string other => throw new UsageException($"--pooling must be mean or cls, not '{other}'"),
            };
        }
        args.RejectUnknown();

        var clock = Stopwatch.StartNew();
        TensorTypes types = plain && type == QuantType.Q4_0 ? TensorTypes.PlainQ4_0 : TensorTypes.For(type);
        var progress = new ProgressBar(error);
        OnnxToGguf.ConvertTo(outputPath, OnnxModel.Read(onnx), vocabulary, name, pooling, types, progress.Report);
        progress.Done();
        output.WriteLine($"wrote {outputPath}: {new FileInfo(outputPath).Length / 1e6:F1} MB, {QuantTypeTraits.Of(type).Name}{(plain ? " (plain)" : "")}, in {clock.ElapsedMilliseconds} ms");
        return CommandLine.ExitOk;
    }

    public static int Info(string path, TextWriter output)
    {
        using GgufFile file = GgufFile.Open(path);
        output.WriteLine($"file: {path} ({file.Length} bytes, GGUF v{file.Version}, alignment {file.Alignment}, data at {file.DataOffset})");
        output.WriteLine($"metadata ({file.Metadata.Count}):");
        foreach ((string key, GgufValue value) in file.Metadata)
        {
            output.WriteLine($"  {key} ({value.Describe()}) = {value.Display()}");
        }
        output.WriteLine($"tensors ({file.Tensors.Count}):");
        output.WriteLine($"  {"name",-32} {"type",-5} {"shape",-14} {"bytes",10} {"offset",10}");
        foreach (GgufTensorInfo tensor in file.Tensors)
        {
            output.WriteLine($"  {tensor.Name,-32} {QuantTypeTraits.Of(tensor.Type).Name,-5} {tensor.Shape,-14} {tensor.ByteSize,10} {tensor.Offset,10}");
        }
        var byType = file.Tensors.GroupBy(t => t.Type).Select(g => $"{QuantTypeTraits.Of(g.Key).Name} {g.Count()} ({g.Sum(t => t.ByteSize) / 1e6:F2} MB)");
        output.WriteLine($"by type: {string.Join(", ", byType)}");
        return CommandLine.ExitOk;
    }

    public static int Embed(Arguments args, TextWriter output)
    {
        string modelPath = ModelCache.Resolve(args.Option("model"), Console.Error);
        int threads = args.IntOption("threads", 1, 1, 64);
        string? file = args.Option("file");
        args.RejectUnknown();
        IEnumerable<string> lines = file is not null ? File.ReadLines(file) : args.Positional;

        using BertModel model = BertModel.Load(modelPath);
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model, threads);
        var embedding = new float[model.Config.HiddenSize];
        var text = new StringBuilder();
        foreach (string line in lines)
        {
            int[] ids = tokenizer.Encode(line);
            encoder.Encode(ids, [ids.Length], embedding);
            text.Clear().Append('[');
            for (int i = 0; i < embedding.Length; i++)
            {
                if (i > 0) text.Append(',');
                text.Append(embedding[i].ToString("R", CultureInfo.InvariantCulture));
            }
            output.WriteLine(text.Append(']'));
        }
        return CommandLine.ExitOk;
    }
}

/// <summary>A progress bar on stderr when it is a terminal; nothing when output goes to a file or pipe.</summary>
internal sealed class ProgressBar(TextWriter error)
{
    private readonly bool _enabled = !Console.IsErrorRedirected;

    public void Report(string item, int done, int total)
    {
        if (!_enabled) return;
        int width = 30, filled = width * done / Math.Max(1, total);
        error.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} {item,-32}");
    }

    public void Done()
    {
        if (_enabled) error.WriteLine();
    }
}
