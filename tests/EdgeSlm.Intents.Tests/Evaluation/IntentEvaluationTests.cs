using System.Text.Json;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Evaluation;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Evaluation;

public sealed class IntentEvaluationTests(ConvertedModels models)
{
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

}
