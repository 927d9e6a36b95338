using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Inference;

/// <summary>The module with a language model (<c>Slm</c> settings), over a real broker.</summary>
public sealed class LanguageModelModuleTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    // Intents defined by name and description only: nothing a classifier could be trained on.
    private const string DescribedIntents = """
        {"intent": "GetWeather", "description": "Tell the weather forecast"}
        {"intent": "StartVacuum", "description": "Start the robot vacuum cleaner", "slots": {"room": {"description": "the room to clean"}}}
        {"intent": "LockDoor", "description": "Lock a door", "slots": {"door": "which door"}}
        """;

    [Fact]
    public async Task In_only_mode_the_module_answers_with_the_intent_the_model_favours_and_says_so()
    {
        string folder = Directory.CreateTempSubdirectory("edgeslm-slm-").FullName;
        string intents = Path.Combine(folder, "described.jsonl");
        await File.WriteAllTextAsync(intents, DescribedIntents, TestContext.Current.CancellationToken);
        IntentDefinitions definitions = IntentDefinitions.Load(intents);
        Assert.Equal(["GetWeather", "LockDoor", "StartVacuum"], definitions.IntentNames);

        // A model whose output layer makes "StartVacuum" far more likely than any other reply.
        using LlamaModel plain = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        DecoderTokenizer tokenizer = plain.CreateTokenizer();
        SlmPrompt prompt = SlmPrompt.Build(definitions, definitions.IntentNames, new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>(), template: null);
        int[] chain = [tokenizer.Encode(prompt.Suffix, addSpecial: false, parseSpecial: true)[^1], .. tokenizer.Encode("StartVacuum\n", addSpecial: false)];
        string model = ChainDecoder.Cached(chain);

        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/slm/#");
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?>
        {
            ["SiteId"] = "slm", ["Intents"] = intents, ["Slm:Model"] = model, ["Slm:Mode"] = "only", ["Slm:Threads"] = "1",
        });
        await client.PublishAsync("edgeslm/slm/transcript", AnswerTally.Request("v1", "could you get the floors cleaned in the hall"));
        Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/slm/intent" && m.Payload.Contains("\"v1\""), Wait, "the answer");
        Assert.Equal("StartVacuum", answer.Json.GetProperty("intent").GetString());
        Assert.Equal("slm", answer.Json.GetProperty("source").GetString());
        Assert.True(answer.Json.GetProperty("confidence").GetDouble() > 0.99);
        Received status = await client.WaitForAsync(m => m.Topic == "edgeslm/slm/model/status" && m.Payload.Contains("\"slm\""), Wait, "model status");
        Assert.Equal("ready", status.Json.GetProperty("slm").GetProperty("status").GetString());
        Assert.Equal("only", status.Json.GetProperty("slm").GetProperty("mode").GetString());
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("corrupt")]
    public async Task A_missing_or_corrupt_model_leaves_the_classifier_answering_and_says_so_on_model_status(string kind)
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("edgeslm-slm-").FullName, "model.gguf");
        if (kind == "corrupt")
        {
            byte[] bytes = new byte[4096];
            new Random(5).NextBytes(bytes);
            "GGUF"u8.CopyTo(bytes);
            await File.WriteAllBytesAsync(file, bytes, TestContext.Current.CancellationToken);
        }
        string site = "slm" + kind;
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, $"edgeslm/{site}/#");
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?>
        {
            ["SiteId"] = site, ["Slm:Model"] = file, ["Slm:Mode"] = "only",
        });
        await client.PublishAsync($"edgeslm/{site}/transcript", AnswerTally.Request("c1", "please switch the kitchen light on"));
        Received answer = await client.WaitForAsync(m => m.Topic == $"edgeslm/{site}/intent" && m.Payload.Contains("\"c1\""), Wait, "the answer");
        Assert.Equal("HassTurnOn", answer.Json.GetProperty("intent").GetString());
        Assert.NotEqual("slm", answer.Json.GetProperty("source").GetString()); // only mode fell back to a trained classifier
        Received status = await client.WaitForAsync(m => m.Topic == $"edgeslm/{site}/model/status" && m.Payload.Contains("\"slm\""), Wait, "model status");
        System.Text.Json.JsonElement slm = status.Json.GetProperty("slm");
        Assert.Equal("error", slm.GetProperty("status").GetString());
        Assert.Equal("off", slm.GetProperty("mode").GetString());
        string error = slm.GetProperty("error").GetString()!;
        Assert.DoesNotContain('\n', error);
        Assert.Contains(kind == "missing" ? "does not exist" : file, error);
    }
}
