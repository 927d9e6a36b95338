using System.Globalization;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Llama;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary>
/// <c>edgeslm classify [--model FILE] [--intents FILE] [--threads N] [--threshold X] [--slm FILE [--slm-mode fallback|only]
/// [--slm-threads N] [--budget-ms N]] [--file SENTENCES | TEXT...]</c>.
/// </summary>
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
        var slm = new SlmSettings { Model = args.Option("slm"), Mode = args.Option("slm-mode") };
        slm.Threads = args.IntOption("slm-threads", threads, 1, 64);
        slm.BudgetMilliseconds = args.IntOption("budget-ms", 60_000, 1, 600_000);
        string modelPath = ModelCache.Resolve(args.Option("model"), error);
        args.RejectUnknown();
        SlmMode mode;
        try
        {
            mode = slm.ParsedMode();
        }
        catch (FormatException e)
        {
            throw new UsageException($"--slm-mode: {e.Message}");
        }
        if (mode != SlmMode.Off && slm.Model is null)
        {
            throw new UsageException("--slm-mode needs --slm FILE (a llama or qwen2 GGUF file)");
        }
        IReadOnlyList<string> texts = file is not null ? File.ReadAllLines(file).Where(l => l.Trim().Length > 0).ToArray() : args.Positional;
        if (texts.Count == 0)
        {
            throw new UsageException("classify: give sentences to classify (or --file)");
        }

        IntentDefinitions definitions = IntentRuntime.LoadDefinitions(intentsPath);
        using BertModel model = BertModel.Load(modelPath);
        using var features = new SentenceFeatures([model], threads);
        IntentEngine engine = mode == SlmMode.Only
            ? IntentEngine.Untrained(definitions)
            : IntentEngine.Train(features, definitions, new IntentEngineSettings(Threshold: threshold), ModelCache.Directory);
        error.WriteLine(engine.Trained
            ? $"{definitions.IntentNames.Count} intents from {definitions.Source}: {(engine.Report.FromCache ? "head loaded from cache" : $"trained on {engine.Report.Examples} examples")} in {engine.Report.Seconds:F1} s"
            : $"{definitions.IntentNames.Count} intents from {definitions.Source}: templates and the language model only");
        using LlamaModel? slmModel = mode == SlmMode.Off ? null : LlamaModel.Load(slm.Model!);
        using SlmRecognizer? recognizer = slmModel is null ? null : SlmRecognizer.Build(slmModel, slmModel.CreateTokenizer(), definitions, slm.Options());
        if (recognizer is not null)
        {
            error.WriteLine($"language model {slmModel!.Name}: prompt of {recognizer.PromptTokens} tokens in {recognizer.PromptSeconds * 1000:F0} ms ({mode.ToString().ToLowerInvariant()} mode, {recognizer.Threads} threads)");
        }
        foreach (string text in texts)
        {
            IntentResult[] results = engine.Classify(features, [text]);
            if (recognizer is not null)
            {
                if (SlmFallback.Apply(results, [text], null, recognizer, SlmDeadline.After(TimeSpan.FromMilliseconds(slm.BudgetMilliseconds))) > 0)
                {
                    error.WriteLine($"classify: the language model ran out of its {slm.BudgetMilliseconds} ms for '{text}'; the classifier's answer stands");
                }
            }
            output.WriteLine(ResultJson.Text(results[0]));
        }
        return CommandLine.ExitOk;
    }
}
