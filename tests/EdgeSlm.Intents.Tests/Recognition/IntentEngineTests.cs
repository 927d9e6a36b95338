using System.Text.Json;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Recognition;

/// <summary>The intent engine on the sample home intents: exact matches, the classifier path, out-of-scope, the saved head.</summary>
public sealed class IntentEngineTests(ConvertedModels models)
{
    private static readonly string[] Utterances =
    [
        "turn on the kitchen lights",                    // exact
        "set a timer for ten minutes",                   // exact, spoken number
        "could you dim the bedroom lights to 40%",       // exact via skip words and %
        "i'd like the kitchen light on, thanks",         // classifier, slot from the list
        "please set a timer for twenty one minutes",     // exact, compound number
        "how tall is mount everest",                     // out of scope
        "make me a sandwich",                            // out-of-scope example: exact, not recognized
    ];

    private (BertModel Model, SentenceFeatures Features) Load()
    {
        var model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        return (model, new SentenceFeatures([model], 1));
    }

    [Fact]
    public void Sample_intents_give_exact_matches_with_slots_and_classifier_answers()
    {
        (BertModel model, SentenceFeatures features) = Load();
        using (model)
        using (features)
        {
            IntentEngine engine = IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(), cacheDirectory: null);
            IntentResult[] results = engine.Classify(features, Utterances);

            Assert.Equal(("HassTurnOn", true, 1f), (results[0].Intent, results[0].ExactMatch, results[0].Confidence));
            Assert.Contains(results[0].Slots, s => s is { Slot: "area", Value: "kitchen", Start: 12, End: 19 });
            SlotValue minutes = Assert.Single(results[1].Slots);
            Assert.Equal(("minutes", "10", "ten", SlotKind.Number, 10.0), (minutes.Slot, minutes.Value, minutes.Raw, minutes.Kind, minutes.Number));
            Assert.Equal("HassLightSet", results[2].Intent);
            SlotValue brightness = results[2].Slots.Single(s => s.Slot == "brightness");
            Assert.Equal((SlotKind.Percentage, 40.0, "40"), (brightness.Kind, brightness.Number, brightness.Raw));
            Assert.Equal(("HassTurnOn", false), (results[3].Intent, results[3].ExactMatch));
            Assert.Contains(results[3].Slots, s => s.Slot == "area" && s.Value == "kitchen" && Utterances[3][s.Start..s.End] == "kitchen");
            Assert.Equal(21, results[4].Slots.Single(s => s.Slot == "minutes").Number);
            Assert.False(results[5].Recognized);
            Assert.False(results[6].Recognized);
            Assert.DoesNotContain(IntentExample.OutOfScope, engine.IntentNames);
        }
    }

    [Fact]
    public void Trained_head_is_saved_and_a_restart_loads_it_with_identical_answers()
    {
        string cache = Path.Combine(Path.GetTempPath(), "edgeslm-heads-" + Guid.NewGuid().ToString("N")[..8]);
        (BertModel model, SentenceFeatures features) = Load();
        try
        {
            using (model)
            using (features)
            {
                IntentEngine first = IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(), cache);
                IntentEngine second = IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(), cache);
                Assert.False(first.Report.FromCache);
                Assert.True(second.Report.FromCache);
                Assert.Equal(first.Threshold, second.Threshold);
                Assert.Equal(first.Report.HeadKey, second.Report.HeadKey);
                Assert.Equal(Describe(first.Classify(features, Utterances)), Describe(second.Classify(features, Utterances)));

                // Other intents or another threshold: another head.
                IntentEngine other = IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(Threshold: 0.5), cache);
                Assert.False(other.Report.FromCache);
                Assert.NotEqual(first.Report.HeadKey, other.Report.HeadKey);

                // A damaged head file is not trusted: the engine trains again and replaces it.
                string head = Directory.GetFiles(Path.Combine(cache, "heads"), first.Report.HeadKey + ".head").Single();
                byte[] bytes = File.ReadAllBytes(head);
                bytes[bytes.Length / 2] ^= 0x55;
                File.WriteAllBytes(head, bytes);
                IntentEngine retrained = IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(), cache);
                Assert.False(retrained.Report.FromCache);
                Assert.Equal(Describe(first.Classify(features, Utterances)), Describe(retrained.Classify(features, Utterances)));
                Assert.True(IntentEngine.Train(features, HomeIntents(), new IntentEngineSettings(), cache).Report.FromCache);
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    /// <summary>Everything an answer says, exactly (the confidence's bits included).</summary>
    private static string[] Describe(IntentResult[] results) =>
        results.Select(r => $"{r.Intent}|{BitConverter.SingleToInt32Bits(r.Confidence)}|{r.ExactMatch}|{r.Truncated}|{string.Join(";", r.Slots)}").ToArray();

    /// <summary>The sample home intents that the module builds in, read from the repository.</summary>
    private static IntentDefinitions HomeIntents() =>
        IntentDefinitions.Load(Path.Combine(TestEnvironment.RepositoryRoot, "deployment", "intents", "home.yaml"));
}
