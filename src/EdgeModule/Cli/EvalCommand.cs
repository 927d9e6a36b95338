using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeSlm.EdgeModule.Conversion;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Model;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary><c>edgeslm eval [--model FILE] --train FILE.jsonl --test FILE.jsonl [--json] [--threads N]</c>.</summary>
internal static class EvalCommand
{
    public static int Run(Arguments args, TextWriter output)
    {
        string trainPath = args.RequiredOption("train");
        string testPath = args.RequiredOption("test");
        int threads = args.IntOption("threads", Math.Min(2, Environment.ProcessorCount), 1, 64);
        int epochs = args.IntOption("epochs", new ClassifierTraining().Epochs, 1, 1000);
        bool json = args.Flag("json");
        string? thresholdText = args.Option("threshold");
        double? threshold = thresholdText is null ? null
            : double.TryParse(thresholdText, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t is >= 0 and <= 1 ? t
            : throw new UsageException($"--threshold must be a number from 0 to 1, not '{thresholdText}'");
        string modelPath = ModelCache.Resolve(args.Option("model"), Console.Error);
        args.RejectUnknown();

        List<IntentExample> train = IntentExample.ReadJsonLines(trainPath);
        List<IntentExample> test = IntentExample.ReadJsonLines(testPath);
        using BertModel model = BertModel.Load(modelPath);
        EvaluationReport report = IntentEvaluation.Run(model, train, test, threads, new ClassifierTraining(Epochs: epochs), threshold);
        output.WriteLine(json ? Json(report) : Text(report, model, train.Count));
        return CommandLine.ExitOk;
    }

    private static string Json(EvaluationReport report)
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
            writer.WriteNumber("p50_us", Math.Round(report.P50Microseconds, 1));
            writer.WriteNumber("p99_us", Math.Round(report.P99Microseconds, 1));
            writer.WriteNumber("n", report.Count);
            writer.WriteNumber("threshold", Math.Round(report.Threshold, 6));
            writer.WriteNumber("train_seconds", Math.Round(report.TrainSeconds, 3));
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

    private static string Text(EvaluationReport report, BertModel model, int trainCount)
    {
        static string Percent(double? v) => v is double d ? (100 * d).ToString("F2", CultureInfo.InvariantCulture) + "%" : "n/a";
        var text = new StringBuilder();
        text.AppendLine($"model {model.Name} ({Path.GetFileName(model.Path)}), trained on {trainCount} examples in {report.TrainSeconds:F1} s, tested on {report.Count}");
        text.AppendLine($"accuracy {Percent(report.Accuracy)}, macro-F1 {Percent(report.MacroF1)}, in-scope accuracy {Percent(report.InScopeAccuracy)}");
        text.AppendLine($"out-of-scope recall {Percent(report.OutOfScopeRecall)}, precision {Percent(report.OutOfScopePrecision)} (threshold {report.Threshold:F3}); slot F1 {Percent(report.SlotF1)}");
        text.AppendLine($"latency per utterance p50 {report.P50Microseconds:F0} us, p99 {report.P99Microseconds:F0} us");
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
