using System.Text.Json;
using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.EdgeModule.Conversion;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Model;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.EdgeModule.Tests;

public sealed class IntentTests(ConvertedModels models)
{
    [Theory]
    [InlineData("snips2017")]
    [InlineData("hwu64")]
    [InlineData("ha_intents_en")]
    public void Every_slot_span_of_the_shared_datasets_slices_to_its_value(string dataset)
    {
        // The files give offsets in code points; SNIPS has an emoji (two UTF-16 units) before some slots.
        List<IntentExample> examples = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, dataset, "train.jsonl"));
        Assert.True(examples.Count > 500);
        int spans = 0;
        foreach (IntentExample example in examples)
        {
            foreach (SlotSpan slot in example.Slots)
            {
                Assert.Equal(slot.Value, example.Text[slot.Start..slot.End]);
                spans++;
            }
        }
        Assert.True(spans > 100);
    }

    [Fact]
    public void A_malformed_line_is_reported_with_file_and_line()
    {
        string path = Path.GetTempFileName();
        File.WriteAllLines(path, ["{\"text\": \"hi\", \"intent\": \"greet\", \"slots\": []}", "{\"text\": \"no intent\"}"]);
        var e = Assert.Throws<FormatException>(() => IntentExample.ReadJsonLines(path));
        Assert.Contains($"{path}:2", e.Message);
        File.Delete(path);
    }

    [Fact]
    public void Classifier_learns_separable_classes_and_gives_probabilities()
    {
        const int dimension = 16, perClass = 50;
        string[] classes = ["a", "b", "c"];
        var random = new Random(1);
        var features = new float[classes.Length * perClass * dimension];
        var labels = new int[classes.Length * perClass];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = i % classes.Length;
            for (int d = 0; d < dimension; d++)
            {
                features[i * dimension + d] = (d == labels[i] ? 1f : 0f) + (float)(random.NextDouble() - 0.5) * 0.4f;
            }
        }
        SoftmaxClassifier classifier = SoftmaxClassifier.Train(classes, features, labels, dimension, new ClassifierTraining(Epochs: 30, LearningRate: 0.05f));
        var probabilities = new float[classes.Length];
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            classifier.Predict(features.AsSpan(i * dimension, dimension), probabilities);
            Assert.Equal(1.0, probabilities.Sum(), 4);
            if (Array.IndexOf(probabilities, probabilities.Max()) == labels[i]) correct++;
        }
        Assert.Equal(labels.Length, correct);
    }

    [Fact]
    public void Evaluation_on_home_assistant_sentences_recognises_held_out_paraphrases()
    {
        // Dev split carved from the train file: every fifth example of each intent.
        List<IntentExample> all = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        var train = all.Where((_, i) => i % 5 != 0).ToList();
        var test = all.Where((_, i) => i % 5 == 0).ToList();
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        EvaluationReport report = IntentEvaluation.Run(model, train, test, threads: 2, new ClassifierTraining());
        Assert.Equal(test.Count, report.Count);
        Assert.InRange(report.Accuracy, 0.80, 1.0);
        Assert.InRange(report.MacroF1, 0.5, 1.0);
        Assert.Null(report.OutOfScopeRecall);
        Assert.True(report.P50Microseconds > 0 && report.P99Microseconds >= report.P50Microseconds);
    }

    [Fact]
    public void Out_of_scope_examples_train_a_rejecting_class_and_are_measured()
    {
        // 15 CLINC intents plus its out-of-scope examples; tested on the same intents of CLINC's dev split.
        string clinc = Path.Combine(TestEnvironment.DatasetsDirectory, "clinc150");
        List<IntentExample> train = IntentExample.ReadJsonLines(Path.Combine(clinc, "train.jsonl"));
        List<IntentExample> dev = IntentExample.ReadJsonLines(Path.Combine(clinc, "dev.jsonl"));
        HashSet<string> chosen = train.Select(e => e.Intent).Where(i => i != IntentExample.OutOfScope).Distinct().Order().Take(15).Append(IntentExample.OutOfScope).ToHashSet();
        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        EvaluationReport report = IntentEvaluation.Run(model, train.Where(e => chosen.Contains(e.Intent)).ToList(),
            dev.Where(e => chosen.Contains(e.Intent)).ToList(), threads: 2, new ClassifierTraining());
        Assert.NotNull(report.OutOfScopeRecall);
        Assert.NotNull(report.OutOfScopePrecision);
        Assert.InRange(report.OutOfScopeRecall!.Value, 0.3, 1.0);
        Assert.InRange(report.InScopeAccuracy, 0.8, 1.0);
    }

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
}
