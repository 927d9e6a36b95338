using System.Text.Json;
using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Cli;

public sealed class EvalCommandTests(ConvertedModels models)
{
    [Fact]
    public void Eval_command_prints_one_json_object_with_the_documented_keys()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-eval-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        string[] lines = File.ReadAllLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        File.WriteAllLines(Path.Combine(directory, "train.jsonl"), lines.Where((_, i) => i % 4 != 0));
        File.WriteAllLines(Path.Combine(directory, "test.jsonl"), lines.Where((_, i) => i % 4 == 0).Take(40));
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandLine.Run(["eval", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--train", Path.Combine(directory, "train.jsonl"),
            "--test", Path.Combine(directory, "test.jsonl"), "--json", "--epochs", "10"], output, error);
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output.ToString());
        foreach (string key in new[] { "accuracy", "macro_f1", "inscope_accuracy", "oos_recall", "oos_precision", "slot_f1", "p50_us", "p99_us", "n" })
        {
            Assert.True(json.RootElement.TryGetProperty(key, out _), key);
        }
        Assert.Equal(40, json.RootElement.GetProperty("n").GetInt32());

        File.WriteAllText(Path.Combine(directory, "bad.jsonl"), "not json\n");
        int bad = CommandLine.Run(["eval", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--train", Path.Combine(directory, "bad.jsonl"),
            "--test", Path.Combine(directory, "test.jsonl")], new StringWriter(), error);
        Assert.Equal(1, bad);
        Assert.Contains("bad.jsonl:1", error.ToString());
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Eval_with_tune_reports_the_untuned_and_the_tuned_model_on_the_same_split()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-eval-tune-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        string[] lines = File.ReadAllLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        string train = Path.Combine(directory, "train.jsonl"), test = Path.Combine(directory, "test.jsonl");
        File.WriteAllLines(train, lines.Where((_, i) => i % 4 != 0).Take(96));
        File.WriteAllLines(test, lines.Where((_, i) => i % 4 == 0).Take(24));
        string model = models.Path(BundledModel.MiniLM, QuantType.Q4_0);
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandLine.Run(["eval", "--model", model, "--train", train, "--test", test, "--json", "--epochs", "10", "--tune", "--tune-epochs", "1"], output, error);
        Assert.True(code == 0, error.ToString());
        using JsonDocument json = JsonDocument.Parse(output.ToString());
        foreach (string part in new[] { "untuned", "tuned" })
        {
            JsonElement report = json.RootElement.GetProperty(part);
            Assert.Equal(24, report.GetProperty("n").GetInt32());
            Assert.InRange(report.GetProperty("accuracy").GetDouble(), 0, 1);
        }
        Assert.Equal(1, json.RootElement.GetProperty("tune_epochs").GetInt32());
        // The tuned encoder is another model: its features differ from the untuned one's.
        Assert.NotEqual(json.RootElement.GetProperty("untuned").GetProperty("features").GetString(),
            json.RootElement.GetProperty("tuned").GetProperty("features").GetString());
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"edgeslm-eval-tuned-{Environment.ProcessId}-*.gguf"));

        // One model only: tuning two side by side is not offered.
        int two = CommandLine.Run(["eval", "--model", $"{model},{model}", "--train", train, "--test", test, "--tune"], new StringWriter(), error);
        Assert.Equal(CommandLine.ExitUsage, two);
        Assert.Contains("--tune tunes one model", error.ToString());
        Directory.Delete(directory, recursive: true);
    }
}
