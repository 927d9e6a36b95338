using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Evaluation;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Training;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary>
/// <c>edgeslm eval [--model M[,M...]] --train FILE.jsonl --test FILE.jsonl [--json] [--threads N] [--epochs N] [--tune]
/// [--threshold X] [--l2 X] [--lexical-weight X] [--oos-distance off|Q] [--save-head FILE]</c>. Each M is a GGUF file or a bundled name
/// (<c>bundled:minilm</c>, <c>bundled:arctic-xs:f32</c>); several models are embedded side by side.
/// <c>--feature-cache DIR</c> (for experiments) keeps embedded example sets between runs.
/// <c>--tune [--tune-epochs N] [--tune-seed S]</c> also fine-tunes the (single) model on the train file, as
/// <c>edgeslm train</c> does, converts it to the same type, and evaluates that too: what tuning gives, side by side.
/// </summary>
internal static class EvalCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        string trainPath = args.RequiredOption("train");
        string testPath = args.RequiredOption("test");
        int threads = args.IntOption("threads", Math.Min(2, Environment.ProcessorCount), 1, 64);
        int epochs = args.IntOption("epochs", new ClassifierTraining().Epochs, 1, 1000);
        bool json = args.Flag("json");
        double? threshold = FractionOption(args, "threshold");
        double? l2 = args.Option("l2") is string l2Text
            ? double.TryParse(l2Text, NumberStyles.Float, CultureInfo.InvariantCulture, out double l) && l is >= 0 and <= 10 ? l
                : throw new UsageException($"--l2 must be a number from 0 to 10, not '{l2Text}'")
            : null;
        float? lexicalWeight = args.Option("lexical-weight") is string weightText
            ? float.TryParse(weightText, NumberStyles.Float, CultureInfo.InvariantCulture, out float w) && w is >= 0 and <= 10 ? w
                : throw new UsageException($"--lexical-weight must be a number from 0 to 10, not '{weightText}'")
            : null;
        string? savePath = args.Option("save-head");
        double? distanceQuantile = args.Option("oos-distance") is string distanceText
            ? distanceText == "off" ? 0
                : double.TryParse(distanceText, NumberStyles.Float, CultureInfo.InvariantCulture, out double q) && q is > 0 and <= 1 ? q
                : throw new UsageException($"--oos-distance must be 'off' or a share from 0 to 1 of held-out in-scope sentences to keep, not '{distanceText}'")
            : null;
        string? featureCache = args.Option("feature-cache");
        string? modelOption = args.Option("model");
        bool tune = args.Flag("tune");
        var tuningDefaults = new TuningSettings();
        int tuneEpochs = args.IntOption("tune-epochs", tuningDefaults.Epochs, 1, 100);
        int tuneSeed = args.IntOption("tune-seed", tuningDefaults.Seed, 0, int.MaxValue);
        IReadOnlyList<string> modelPaths = ModelCache.ResolveAll(modelOption, Console.Error);
        args.RejectUnknown();
        if (tune && modelPaths.Count != 1)
        {
            throw new UsageException("--tune tunes one model: give --model a single file or bundled name");
        }

        List<IntentExample> train = IntentExample.ReadJsonLines(trainPath);
        List<IntentExample> test = IntentExample.ReadJsonLines(testPath);
        var models = new List<BertModel>();
        try
        {
            foreach (string path in modelPaths)
            {
                models.Add(BertModel.Load(path));
            }
            var settings = new ClassifierTraining(Epochs: epochs, Threads: threads);
            EvaluationReport Evaluate(SentenceFeatures features, string? cache) => l2 is double fixedL2
                ? IntentEvaluation.Run(features, train, test, settings with { L2 = (float)fixedL2 }, threshold, selectL2: false, cache, lexicalWeight, distanceQuantile)
                : IntentEvaluation.Run(features, train, test, settings, threshold, featureCache: cache, lexicalWeight: lexicalWeight, distanceQuantile: distanceQuantile);
            using var features = new SentenceFeatures(models, threads);
            EvaluationReport report = Evaluate(features, featureCache);
            if (!tune)
            {
                if (savePath is not null && !HeadFile.TryWrite(savePath, report.Trained))
                {
                    throw new IOException($"cannot write the head to {savePath}");
                }
                output.WriteLine(json ? Json(report, features) : Text(report, models, features));
                return CommandLine.ExitOk;
            }

            // The same model tuned on the train file, converted to the untuned file's type, evaluated the same way.
            QuantType type = modelOption?.StartsWith(ModelCache.BundledPrefix, StringComparison.OrdinalIgnoreCase) == true
                ? ModelCache.ParseBundled(modelOption).Type
                : string.IsNullOrWhiteSpace(modelOption) ? QuantType.Q4_0 : models[0].LinearLayers.First().Type;
            var clock = Stopwatch.StartNew();
            (BertParameters parameters, string[] vocabulary, string name) = TrainCommand.LoadWeights(modelOption ?? ModelCache.BundledPrefix + BundledModel.MiniLM.Name);
            var tokenizer = new WordPieceTokenizer(vocabulary, parameters.Config.ContextLength);
            IReadOnlyList<TuningEpoch> epochsRun = EncoderTuning.Tune(parameters, tokenizer, train,
                tuningDefaults with { Epochs = tuneEpochs, Seed = tuneSeed, Threads = threads });
            string tunedPath = Path.Combine(Path.GetTempPath(), $"edgeslm-eval-tuned-{Environment.ProcessId}-{Guid.NewGuid():N}.gguf");
            try
            {
                OnnxToGguf.ConvertTo(tunedPath, parameters, vocabulary, name + " (tuned)", TensorTypes.For(type));
                double tuneSeconds = clock.Elapsed.TotalSeconds;
                using BertModel tunedModel = BertModel.Load(tunedPath);
                using var tunedFeatures = new SentenceFeatures([tunedModel], threads);
                EvaluationReport tuned = Evaluate(tunedFeatures, null);
                if (savePath is not null && !HeadFile.TryWrite(savePath, tuned.Trained))
                {
                    throw new IOException($"cannot write the head to {savePath}");
                }
                output.WriteLine(json
                    ? string.Create(CultureInfo.InvariantCulture, $"{{\"untuned\":{Json(report, features)},\"tuned\":{Json(tuned, tunedFeatures)},\"tune_epochs\":{epochsRun.Count},\"tune_seconds\":{tuneSeconds:F1}}}")
                    : $"untuned:\n{Text(report, models, features)}\n\ntuned ({epochsRun.Count} epochs on the train file, {QuantTypeTraits.Of(type).Name}, {tuneSeconds:F0} s to tune and convert):\n{Text(tuned, [tunedModel], tunedFeatures)}\n\n{Difference(report, tuned)}");
            }
            finally
            {
                File.Delete(tunedPath);
            }
        }
        finally
        {
            foreach (BertModel model in models)
            {
                model.Dispose();
            }
        }
        return CommandLine.ExitOk;
    }

    private static string Difference(EvaluationReport untuned, EvaluationReport tuned)
    {
        static string Points(double? before, double? after) =>
            before is double b && after is double a ? (100 * (a - b)).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture) : "n/a";
        return $"tuning gives: accuracy {Points(untuned.Accuracy, tuned.Accuracy)} points, in-scope accuracy {Points(untuned.InScopeAccuracy, tuned.InScopeAccuracy)}, " +
            $"out-of-scope recall {Points(untuned.OutOfScopeRecall, tuned.OutOfScopeRecall)}, slot F1 {Points(untuned.SlotF1, tuned.SlotF1)}";
    }

    private static double? FractionOption(Arguments args, string name) =>
        args.Option(name) is not string text ? null
        : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value is >= 0 and <= 1 ? value
        : throw new UsageException($"--{name} must be a number from 0 to 1, not '{text}'");

    private static string Json(EvaluationReport report, SentenceFeatures features)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteNumber("accuracy", Math.Round(report.Accuracy, 6));
            writer.WriteNumber("macro_f1", Math.Round(report.MacroF1, 6));
            writer.WriteNumber("inscope_accuracy", Math.Round(report.InScopeAccuracy, 6));
            WriteOptional(writer, "oos_recall", report.OutOfScopeRecall);
            WriteOptional(writer, "oos_precision", report.OutOfScopePrecision);
            WriteOptional(writer, "slot_f1", report.SlotF1);
            WriteOptional(writer, "slot_precision", report.SlotPrecision);
            WriteOptional(writer, "slot_recall", report.SlotRecall);
            writer.WriteNumber("p50_us", Math.Round(report.P50Microseconds, 1));
            writer.WriteNumber("p99_us", Math.Round(report.P99Microseconds, 1));
            writer.WriteNumber("slots_oos_p50_us", Math.Round(report.SlotsP50Microseconds, 1));
            writer.WriteNumber("n", report.Count);
            writer.WriteNumber("threshold", Math.Round(report.Threshold, 6));
            if (double.IsFinite(report.Trained.DistanceThreshold)) writer.WriteNumber("distance_threshold", Math.Round(report.Trained.DistanceThreshold, 3));
            writer.WriteNumber("train_seconds", Math.Round(report.TrainSeconds, 3));
            writer.WriteNumber("embed_seconds", Math.Round(report.EmbedSeconds, 3));
            writer.WriteNumber("train_n", report.TrainCount);
            writer.WriteNumber("l2", report.L2);
            writer.WriteNumber("lexical_weight", report.Head.LexicalWeight);
            writer.WriteNumber("lexical_terms", report.Head.Lexical?.VocabularySize ?? 0);
            writer.WriteNumber("dimension", features.Dimension);
            writer.WriteString("features", features.Fingerprint);
            writer.WriteStartArray("confusions");
            foreach ((string expected, string predicted, int count) in report.Confusions)
            {
                writer.WriteStartObject();
                writer.WriteString("expected", expected);
                writer.WriteString("predicted", predicted);
                writer.WriteNumber("count", count);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, double? value)
    {
        if (value is double v) writer.WriteNumber(name, Math.Round(v, 6));
        else writer.WriteNull(name);
    }

    private static string Text(EvaluationReport report, IReadOnlyList<BertModel> models, SentenceFeatures features)
    {
        static string Percent(double? v) => v is double d ? (100 * d).ToString("F2", CultureInfo.InvariantCulture) + "%" : "n/a";
        var text = new StringBuilder();
        text.AppendLine($"{(models.Count == 1 ? "model" : "models")} {string.Join(" + ", models.Select(m => $"{m.Name} ({Path.GetFileName(m.Path)})"))}, {features.Dimension} features");
        text.AppendLine($"trained on {report.TrainCount} examples in {report.TrainSeconds:F1} s ({report.EmbedSeconds:F1} s of it embedding), tested on {report.Count}");
        text.AppendLine($"accuracy {Percent(report.Accuracy)}, macro-F1 {Percent(report.MacroF1)}, in-scope accuracy {Percent(report.InScopeAccuracy)}");
        text.AppendLine($"out-of-scope recall {Percent(report.OutOfScopeRecall)}, precision {Percent(report.OutOfScopePrecision)} (threshold {report.Threshold:F3}); L2 {report.L2:G2}; lexical weight {report.Head.LexicalWeight:G2} ({report.Head.Lexical?.VocabularySize ?? 0} terms); slot F1 {Percent(report.SlotF1)} (precision {Percent(report.SlotPrecision)}, recall {Percent(report.SlotRecall)})");
        text.AppendLine($"latency per utterance p50 {report.P50Microseconds:F0} us, p99 {report.P99Microseconds:F0} us (slot tagger and distance: p50 {report.SlotsP50Microseconds:F0} us)");
        if (report.Confusions.Count > 0)
        {
            text.AppendLine("most confused (expected -> predicted):");
            foreach ((string expected, string predicted, int count) in report.Confusions)
            {
                text.AppendLine($"  {count,4}  {expected} -> {predicted}");
            }
        }
        return text.ToString().TrimEnd();
    }
}
