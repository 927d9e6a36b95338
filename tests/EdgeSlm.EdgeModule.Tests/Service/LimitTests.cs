using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Service;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>
/// The limits that bound memory and time, one test each: tokens per utterance, intents and examples per
/// definition, template expansion, the queue. (Payload bytes: MqttModuleTests' malformed-message test.)
/// </summary>
public sealed class LimitTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private const string TwoIntents = """
        intents:
          FeedCat:
            data:
              - sentences: ["feed the cat", "give the cat (food|dinner|breakfast)", "the cat is hungry"]
          OpenGarage:
            data:
              - sentences: ["open the garage [door]", "raise the garage door", "let me into the garage"]
        """;

    [Fact]
    public async Task Utterance_over_MaxTokens_is_classified_on_its_start_and_says_truncated()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "tk", ["MaxTokens"] = "12" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/tk/intent");
        string longer = "i'd like the kitchen light on, thanks, " + string.Join(' ', Enumerable.Repeat("and then some more words nobody needs", 20));
        await client.PublishAsync("edgeslm/tk/transcript", AnswerTally.Request("tk-long", longer));
        await client.PublishAsync("edgeslm/tk/transcript", AnswerTally.Request("tk-short", "i'd like the kitchen light on"));
        await client.WaitForAsync(all => all.Count >= 2, Wait, "two answers");
        Received cut = client.Messages.Single(m => m.Payload.Contains("\"tk-long\""));
        Received whole = client.Messages.Single(m => m.Payload.Contains("\"tk-short\""));
        Assert.True(cut.Json.GetProperty("truncated").GetBoolean());
        Assert.Equal("HassTurnOn", cut.Json.GetProperty("intent").GetString());
        Assert.False(whole.Json.TryGetProperty("truncated", out _));
    }

    [Fact]
    public async Task MaxTokens_over_the_model_context_stops_the_start_naming_the_setting()
    {
        SettingsException e = await Assert.ThrowsAsync<SettingsException>(() => InProcessModule.StartAsync(models, "mqtt://127.0.0.1:1",
            new Dictionary<string, string?> { ["MaxTokens"] = "4096" }, waitForConnection: false));
        Assert.Equal("MaxTokens: 4096 is more than the model's context of 512 tokens", e.Message);
    }

    [Fact]
    public void Definitions_over_MaxIntents_or_MaxExamples_are_refused_naming_the_limit()
    {
        using var model = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var features = new SentenceFeatures([model], 1);
        IntentDefinitions definitions = IntentDefinitions.FromYaml(TwoIntents, "two.yaml");
        IntentFileException intents = Assert.Throws<IntentFileException>(() => IntentEngine.Train(features, definitions, new IntentEngineSettings(MaxIntents: 1), null));
        Assert.Equal("two.yaml: 2 intents, over the limit of 1 (MaxIntents)", intents.Message);
        IntentFileException examples = Assert.Throws<IntentFileException>(() => IntentEngine.Train(features, definitions, new IntentEngineSettings(MaxExamples: 5), null));
        Assert.Matches(@"^two\.yaml: \d+ examples with the templates expanded \(20 per template\), over the limit of 5 \(MaxExamples\)$", examples.Message);
    }

    [Fact]
    public async Task Intents_set_over_MaxIntents_is_refused_on_the_status_topic_and_the_module_keeps_its_intents()
    {
        string file = Path.Combine(Path.GetTempPath(), $"edgeslm-limits-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, TwoIntents);
        try
        {
            using var broker = Mosquitto.Start();
            await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "mi", ["Intents"] = file, ["MaxIntents"] = "2" });
            await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/mi/#");
            await client.PublishAsync("edgeslm/mi/intents/set", TwoIntents + """

                  WaterLawn:
                    data:
                      - sentences: ["water the (lawn|grass)", "the lawn needs water"]
                """);
            Received error = await client.WaitForAsync(m => m.Topic == "edgeslm/mi/intents/status" && m.Payload.Contains("\"error\""), Wait, "status error");
            Assert.Contains("3 intents, over the limit of 2 (MaxIntents)", error.Json.GetProperty("error").GetString());
            await client.PublishAsync("edgeslm/mi/transcript", AnswerTally.Request("mi-1", "open the garage door"));
            Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/mi/intent", Wait, "answer");
            Assert.Equal("OpenGarage", answer.Json.GetProperty("intent").GetString());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void ExamplesPerTemplate_caps_what_a_long_list_expands_to()
    {
        string yaml = "intents:\n  PlaySong:\n    data:\n      - sentences: [\"play {song}\"]\nlists:\n  song:\n    values: ["
            + string.Join(", ", Enumerable.Range(0, 500).Select(i => $"\"song {i}\"")) + "]\n";
        IntentDefinitions definitions = IntentDefinitions.FromYaml(yaml, "songs.yaml");
        Assert.Equal(7, definitions.TrainingExamples(7, 1, []).Count);
        Assert.Equal(40, definitions.TrainingExamples(40, 1, []).Count);
    }

    [Fact]
    public void Limit_settings_are_checked_at_start_up_and_named()
    {
        var settings = new ModuleSettings { MaxTokens = 2, MaxIntents = 0, MaxExamples = 0, ExamplesPerTemplate = 0 };
        List<string> errors = settings.Validate();
        Assert.Contains(errors, e => e.StartsWith("MaxTokens: 2 ", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("MaxIntents: 0 ", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("MaxExamples: 0 ", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ExamplesPerTemplate: 0 ", StringComparison.Ordinal));
        Assert.Contains(new ModuleSettings { Threads = 2, EncoderThreads = 3 }.Validate(), e => e.StartsWith("EncoderThreads: 3 is not between 1 and Threads (2)", StringComparison.Ordinal));
        Assert.Empty(new ModuleSettings { Threads = 2, EncoderThreads = 2 }.Validate());
        Assert.Equal((128, 1000, 50_000, 20), (new ModuleSettings().MaxTokens, new ModuleSettings().MaxIntents, new ModuleSettings().MaxExamples, new ModuleSettings().ExamplesPerTemplate));
    }

    [Fact]
    public async Task Queue_of_one_pauses_reading_and_answers_every_transcript_once()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/qc/intent");
        var tally = new AnswerTally(client, "edgeslm/qc/intent");
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?>
        {
            ["SiteId"] = "qc", ["Profiles"] = "native", ["QueueCapacity"] = "1", ["MaxBatch"] = "1",
        });
        string[] sentences = TestEnvironment.Sentences(150).ToArray();
        for (int i = 0; i < sentences.Length; i++) await tally.PublishAsync(client, "edgeslm/qc/transcript", $"qc-{i}", sentences[i]);
        await tally.WaitForAsync(150, Wait, "150 answers");
        await Task.Delay(500, TestContext.Current.CancellationToken);
        Assert.Equal((150, 0L), (tally.Distinct, tally.Duplicates));
        Assert.Equal(150, module.Counters.Inference.Snapshot().Count);
    }
}
