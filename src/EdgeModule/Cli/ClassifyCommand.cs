using System.Globalization;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary><c>edgeslm classify [--model FILE] [--intents FILE] [--threads N] [--threshold X] [--file SENTENCES | TEXT...]</c>.</summary>
internal static class ClassifyCommand
{
    public static int Run(Arguments args, TextWriter output, TextWriter error)
    {
        string? intentsPath = args.Option("intents");
        int threads = args.IntOption("threads", Math.Min(2, Environment.ProcessorCount), 1, 64);
        string? thresholdText = args.Option("threshold");
        double? threshold = thresholdText is null ? null
            : double.TryParse(thresholdText, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t is >= 0 and <= 1 ? t
            : throw new UsageException($"--threshold must be a number from 0 to 1, not '{thresholdText}'");
        string? file = args.Option("file");
        string modelPath = ModelCache.Resolve(args.Option("model"), error);
        args.RejectUnknown();
        IReadOnlyList<string> texts = file is not null ? File.ReadAllLines(file).Where(l => l.Trim().Length > 0).ToArray() : args.Positional;
        if (texts.Count == 0)
        {
            throw new UsageException("classify: give sentences to classify (or --file)");
        }

        IntentDefinitions definitions = IntentRuntime.LoadDefinitions(intentsPath);
        using BertModel model = BertModel.Load(modelPath);
        using var features = new SentenceFeatures([model], threads);
        IntentEngine engine = IntentEngine.Train(features, definitions, new IntentEngineSettings(Threshold: threshold), ModelCache.Directory);
        error.WriteLine($"{definitions.IntentNames.Count} intents from {definitions.Source}: {(engine.Report.FromCache ? "head loaded from cache" : $"trained on {engine.Report.Examples} examples")} in {engine.Report.Seconds:F1} s");
        foreach (string text in texts)
        {
            IntentResult result = engine.Classify(features, [text])[0];
            output.WriteLine(ResultJson.Text(result));
        }
        return CommandLine.ExitOk;
    }
}
