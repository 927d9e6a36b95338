using System.Diagnostics;
using System.Globalization;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Training;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary>
/// <c>edgeslm train --intents FILE [--model M] [--epochs N] [--seed S] [--threads N] [--rate X] [--slot-weight X]
/// [--type q4_0|q8_0|f16|f32] [--f32 FILE] -o TUNED.gguf</c>: fine-tunes the encoder on the intents file's examples (and template
/// expansions) and writes it as an ordinary GGUF file, by the same conversion (GPTQ for q4_0) as the bundled model.
/// M is <c>bundled:NAME</c> (the fp32 ONNX weights; the default is <c>bundled:minilm</c>) or a GGUF file (its weights
/// dequantized).
/// </summary>
internal static class TrainCommand
{
    public static int Run(Arguments args, TextWriter output, TextWriter error)
    {
        string intentsPath = args.RequiredOption("intents");
        string outputPath = args.RequiredOption("o");
        string modelName = args.Option("model") ?? ModelCache.BundledPrefix + BundledModel.MiniLM.Name;
        var defaults = new TuningSettings();
        int epochs = args.IntOption("epochs", defaults.Epochs, 1, 100);
        int seed = args.IntOption("seed", defaults.Seed, 0, int.MaxValue);
        int threads = args.IntOption("threads", Math.Min(2, Environment.ProcessorCount), 1, 64);
        int batch = args.IntOption("batch", defaults.BatchSize, 1, 4096);
        float rate = FloatOption(args, "rate", defaults.LearningRate, 0, 1);
        float slotWeight = FloatOption(args, "slot-weight", defaults.SlotLossWeight, 0, 100);
        string? floatPath = args.Option("f32");
        QuantType type = QuantTypeTraits.Parse(args.Option("type") ?? "q4_0").Type;
        if (!QuantTypeTraits.Of(type).IsNative)
        {
            throw new UsageException($"--type {QuantTypeTraits.Of(type).Name}: EdgeSlm writes only f32, f16, q8_0 and q4_0");
        }
        args.RejectUnknown();
        if (!File.Exists(intentsPath))
        {
            throw new FileNotFoundException($"intents file {intentsPath} does not exist");
        }

        var clock = Stopwatch.StartNew();
        (BertParameters parameters, string[] vocabulary, string baseName) = LoadWeights(modelName);
        IntentDefinitions definitions = IntentDefinitions.Load(intentsPath);
        var problems = new List<string>();
        var engineDefaults = new IntentEngineSettings();
        List<IntentExample> examples = definitions.TrainingExamples(engineDefaults.ExamplesPerTemplate, engineDefaults.Seed, problems);
        foreach (string problem in problems) error.WriteLine($"edgeslm: {problem}");
        if (examples.Count == 0)
        {
            throw new InvalidDataException($"{intentsPath} has no examples to tune on");
        }
        var tokenizer = new WordPieceTokenizer(vocabulary, parameters.Config.ContextLength);
        var settings = defaults with { Epochs = epochs, Seed = seed, Threads = threads, BatchSize = batch, LearningRate = rate, SlotLossWeight = slotWeight };
        output.WriteLine($"tuning {baseName} on {examples.Count} examples of {examples.Select(e => e.Intent).Distinct().Count()} intents ({examples.Count(e => e.Slots.Count > 0)} with slots): {epochs} epochs, batch {settings.BatchSize}, rate {settings.LearningRate:G3}, {threads} threads");
        EncoderTuning.Tune(parameters, tokenizer, examples, settings, epoch =>
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {epoch.Epoch}: {epoch.Elapsed.TotalSeconds:F1} s, intent loss {epoch.IntentLoss:F4}, slot loss {epoch.SlotLoss:F4}, train accuracy {100 * epoch.Accuracy:F2}%")));

        var write = Stopwatch.StartNew();
        OnnxToGguf.ConvertTo(outputPath, parameters, vocabulary, baseName + " (tuned)", TensorTypes.For(type));
        output.WriteLine($"wrote {outputPath}: {new FileInfo(outputPath).Length / 1e6:F1} MB, {QuantTypeTraits.Of(type).Name}, conversion {write.Elapsed.TotalSeconds:F1} s, total {clock.Elapsed.TotalSeconds:F1} s");
        if (floatPath is not null)
        {
            // The same weights unquantized, to measure what quantization costs after tuning.
            OnnxToGguf.ConvertTo(floatPath, parameters, vocabulary, baseName + " (tuned)", TensorTypes.For(QuantType.F32));
            output.WriteLine($"wrote {floatPath}: {new FileInfo(floatPath).Length / 1e6:F1} MB, f32");
        }
        return CommandLine.ExitOk;
    }

    /// <summary>The float weights to tune: a bundled model's fp32 ONNX (<c>bundled:NAME</c>, any <c>:TYPE</c> ignored), or a GGUF file's, dequantized.</summary>
    internal static (BertParameters, string[] Vocabulary, string Name) LoadWeights(string model)
    {
        if (model.StartsWith(ModelCache.BundledPrefix, StringComparison.OrdinalIgnoreCase))
        {
            BundledModel bundled = ModelCache.ParseBundled(model).Model;
            string[] vocabulary = bundled.ReadVocabulary();
            return (OnnxToGguf.ReadParameters(OnnxModel.Read(bundled.ReadOnnx()), vocabulary, bundled.Pooling), vocabulary, bundled.DisplayName);
        }
        if (!File.Exists(model))
        {
            throw new FileNotFoundException($"model file {model} does not exist");
        }
        using BertModel loaded = BertModel.Load(model);
        return (BertParameters.FromModel(loaded), loaded.Vocabulary, loaded.Name);
    }

    private static float FloatOption(Arguments args, string name, float fallback, float min, float max) =>
        args.Option(name) is not string text ? fallback
        : float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && value >= min && value <= max ? value
        : throw new UsageException($"--{name} must be a number from {min} to {max}, not '{text}'");
}
