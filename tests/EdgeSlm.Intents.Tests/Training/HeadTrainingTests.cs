using System.Text.Json;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Training;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Training;

public sealed class HeadTrainingTests(ConvertedModels models)
{
    [Fact]
    public void Final_head_is_refitted_on_the_held_out_in_scope_examples_but_not_on_the_held_out_out_of_scope_ones()
    {
        // Every example has a word of its own, so the words the final head knows tell which examples it was trained
        // on. Ten examples per class: one in-scope example of each intent is held out to choose the settings, and
        // three out-of-scope ones to calibrate the threshold.
        string[] things = ["desk", "porch", "attic", "garage", "hallway", "pantry", "cellar", "nursery", "balcony", "studio"];
        string[] cities = ["paris", "lisbon", "oslo", "quito", "lima", "dakar", "hanoi", "perth", "tunis", "riga"];
        string[][] unrelated =
        [
            ["zebra", "quartz", "violin"], ["mango", "glacier", "sonnet"], ["pirate", "tulip", "comet"], ["walrus", "opera", "cactus"],
            ["lantern", "badger", "fjord"], ["walnut", "meteor", "ballet"], ["falcon", "saffron", "canyon"], ["oyster", "sphinx", "harp"],
            ["llama", "cobalt", "sonata"], ["turnip", "nebula", "kayak"],
        ];
        var inScope = things.Select(t => new IntentExample($"switch on the {t} lamp", "lights_on", []))
            .Concat(cities.Select(c => new IntentExample($"what is the weather in {c}", "weather", []))).ToList();
        var outOfScope = unrelated.Select(words => new IntentExample(string.Join(' ', words), IntentExample.OutOfScope, [])).ToList();

        using BertModel model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var features = new SentenceFeatures([model], threads: 2);
        TrainedHead trained = HeadTraining.Train(features, [.. inScope, .. outOfScope], new ClassifierTraining(Threads: 2),
            threshold: null, lexicalWeight: 0.5f);

        // Three words make five terms (words and adjacent pairs), none shared with another example.
        int inScopeTerms = inScope.SelectMany(e => LexicalClassifier.Terms(e.Text)).Distinct(StringComparer.Ordinal).Count();
        Assert.Equal(inScopeTerms + (outOfScope.Count - 3) * 5, trained.Head.Lexical!.VocabularySize);
        Assert.Equal(0.5f, trained.Head.LexicalWeight);
    }
}
