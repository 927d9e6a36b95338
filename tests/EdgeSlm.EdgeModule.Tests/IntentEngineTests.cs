using System.Text.Json;
using EdgeSlm.EdgeModule.Conversion;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Intents.Slots;
using EdgeSlm.EdgeModule.Model;
using EdgeSlm.EdgeModule.Module;
using EdgeSlm.EdgeModule.Tests.Module;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.EdgeModule.Tests;

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
            IntentEngine engine = IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(), cacheDirectory: null);
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
                IntentEngine first = IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(), cache);
                IntentEngine second = IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(), cache);
                Assert.False(first.Report.FromCache);
                Assert.True(second.Report.FromCache);
                Assert.Equal(first.Threshold, second.Threshold);
                Assert.Equal(first.Report.HeadKey, second.Report.HeadKey);
                Assert.Equal(Json(first.Classify(features, Utterances)), Json(second.Classify(features, Utterances)));

                // Other intents or another threshold: another head.
                IntentEngine other = IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(Threshold: 0.5), cache);
                Assert.False(other.Report.FromCache);
                Assert.NotEqual(first.Report.HeadKey, other.Report.HeadKey);

                // A damaged head file is not trusted: the engine trains again and replaces it.
                string head = Directory.GetFiles(Path.Combine(cache, "heads"), first.Report.HeadKey + ".head").Single();
                byte[] bytes = File.ReadAllBytes(head);
                bytes[bytes.Length / 2] ^= 0x55;
                File.WriteAllBytes(head, bytes);
                IntentEngine retrained = IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(), cache);
                Assert.False(retrained.Report.FromCache);
                Assert.Equal(Json(first.Classify(features, Utterances)), Json(retrained.Classify(features, Utterances)));
                Assert.True(IntentEngine.Train(features, SampleIntents.Load(), new IntentEngineSettings(), cache).Report.FromCache);
            }
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }

    [Fact]
    public void Classify_command_prints_one_json_result_per_input()
    {
        (int exit, string output) = ModuleProcess.RunToEnd(TimeSpan.FromMinutes(3), "classify", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0),
            "turn off the garage lights", "set the thermostat to 19 degrees", "what's the capital of australia");
        Assert.Equal(0, exit);
        JsonElement[] lines = output.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(3, lines.Length);
        Assert.Equal(["turn off the garage lights", "set the thermostat to 19 degrees", "what's the capital of australia"], lines.Select(l => l.GetProperty("text").GetString()));
        Assert.Equal("HassTurnOff", lines[0].GetProperty("intent").GetString());
        Assert.Equal("HassClimateSetTemperature", lines[1].GetProperty("intent").GetString());
        JsonElement temperature = lines[1].GetProperty("slots").EnumerateArray().Single(s => s.GetProperty("slot").GetString() == "temperature");
        Assert.Equal(("19", "19", 22, 24), (temperature.GetProperty("value").GetString(), temperature.GetProperty("raw").GetString(), temperature.GetProperty("start").GetInt32(), temperature.GetProperty("end").GetInt32()));
        Assert.False(lines[2].GetProperty("recognized").GetBoolean());
        Assert.Equal(JsonValueKind.Null, lines[2].GetProperty("intent").ValueKind);
        foreach (JsonElement line in lines)
        {
            Assert.InRange(line.GetProperty("confidence").GetDouble(), 0, 1);
        }
    }

    private static string[] Json(IntentResult[] results) => results.Select(Protocols.ResultJson.Text).ToArray();
}
