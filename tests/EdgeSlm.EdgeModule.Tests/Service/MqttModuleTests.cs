using System.Text.Json;
using System.Text;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>The module against a real mosquitto and against its embedded broker, end to end over MQTT.</summary>
public sealed class MqttModuleTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static string Id(Received m) => m.Json.TryGetProperty("id", out JsonElement id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : "";

    [Fact]
    public async Task Hermes_query_gets_intentParsed_and_the_intent_topic_with_every_field()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url);
        await using var client = await TestClient.ConnectAsync(broker.Port, "hermes/nlu/#", "hermes/intent/#", "hermes/error/nlu");

        await client.PublishAsync("hermes/nlu/query", """
            {"input":"turn on the kitchen lights","siteId":"kitchen","id":"req-17","intentFilter":null,"sessionId":"s-42",
             "wakewordId":null,"lang":"en","customData":"from-test","asrConfidence":0.93,"customEntities":null}
            """);
        Received intent = await client.WaitForAsync(m => m.Topic == "hermes/intent/HassTurnOn", Wait, "hermes/intent/HassTurnOn");
        Received parsed = await client.WaitForAsync(m => m.Topic == "hermes/nlu/intentParsed", Wait, "intentParsed");

        foreach (JsonElement json in new[] { intent.Json, parsed.Json })
        {
            Assert.Equal("turn on the kitchen lights", json.GetProperty("input").GetString());
            Assert.Equal("HassTurnOn", json.GetProperty("intent").GetProperty("intentName").GetString());
            float confidence = json.GetProperty("intent").GetProperty("confidenceScore").GetSingle();
            Assert.InRange(confidence, 0.5f, 1f);
            Assert.Equal("kitchen", json.GetProperty("siteId").GetString());
            Assert.Equal("req-17", json.GetProperty("id").GetString());
            Assert.Equal("s-42", json.GetProperty("sessionId").GetString());
            Assert.Equal(JsonValueKind.Array, json.GetProperty("slots").ValueKind);
        }
        Assert.Equal("from-test", intent.Json.GetProperty("customData").GetString());
        Assert.Equal("en", intent.Json.GetProperty("lang").GetString());
        Assert.Equal(0.93, intent.Json.GetProperty("asrConfidence").GetDouble(), 3);
        Assert.Equal("turn on the kitchen lights", intent.Json.GetProperty("rawInput").GetString());
        Assert.Equal(JsonValueKind.Null, intent.Json.GetProperty("wakewordId").ValueKind);
        // intentParsed comes before the intent message.
        var order = client.Messages.Select(m => m.Topic).ToList();
        Assert.True(order.IndexOf("hermes/nlu/intentParsed") < order.IndexOf("hermes/intent/HassTurnOn"));
    }

    [Fact]
    public async Task Mqtt_3_1_1_is_selectable_and_answers_the_same_way()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["Mqtt:ProtocolVersion"] = "3.1.1", ["SiteId"] = "v3" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "hermes/intent/#", "edgeslm/v3/intent");
        await client.PublishAsync("hermes/nlu/query", """{"input":"set a timer for ten minutes","siteId":"v3","id":"v3-1"}""");
        Received intent = await client.WaitForAsync(m => m.Topic == "hermes/intent/HassStartTimer", Wait, "hermes/intent/HassStartTimer over 3.1.1");
        Assert.Equal("v3-1", Id(intent));
        JsonElement slot = intent.Json.GetProperty("slots").EnumerateArray().Single();
        Assert.Equal("minutes", slot.GetProperty("slotName").GetString());
        Assert.Equal("Number", slot.GetProperty("value").GetProperty("kind").GetString());
        Assert.Equal(10, slot.GetProperty("value").GetProperty("value").GetDouble());
        Assert.Equal(16, slot.GetProperty("range").GetProperty("start").GetInt32());
        Assert.Equal(19, slot.GetProperty("range").GetProperty("end").GetInt32());
    }

    [Fact]
    public async Task Telemetry_is_published_with_the_inference_statistics()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "tm", ["Telemetry:IntervalSeconds"] = "1" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/tm/#");
        await client.PublishAsync("edgeslm/tm/transcript", "turn off the garage lights");
        await client.WaitForAsync(m => m.Topic == "edgeslm/tm/intent", Wait, "answer");
        Received telemetry = await client.WaitForAsync(m => m.Topic == "edgeslm/tm/telemetry" && m.Json.GetProperty("inference").GetProperty("count").GetInt64() >= 1, Wait, "telemetry counting the answer");
        JsonElement inference = telemetry.Json.GetProperty("inference");
        Assert.Equal(0, inference.GetProperty("errors").GetInt64());
        Assert.True(inference.GetProperty("p50Ms").GetDouble() > 0);
        Assert.True(telemetry.Json.GetProperty("rssBytes").GetInt64() > 10_000_000);
        Assert.Equal("tm", telemetry.Json.GetProperty("siteId").GetString());
    }

    [Fact]
    public async Task Editing_the_intents_file_retrains_and_a_broken_file_keeps_the_last_good_intents()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-intents-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        string file = Path.Combine(directory, "intents.yaml");
        File.WriteAllText(file, """
            intents:
              FeedCat:
                data:
                  - sentences: ["feed the cat", "give the cat (food|dinner|breakfast)", "the cat is hungry"]
              OpenGarage:
                data:
                  - sentences: ["open the garage [door]", "raise the garage door", "let me into the garage"]
            """);
        try
        {
            using var broker = Mosquitto.Start();
            await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "fw", ["Intents"] = file });
            await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/fw/#");
            File.WriteAllText(file, File.ReadAllText(file) + "\n" + """
                  WaterLawn:
                    data:
                      - sentences: ["water the (lawn|grass)", "(start|turn on) the sprinklers", "the lawn needs water"]
                """);
            Received ready = await client.WaitForAsync(m => m.Topic == "edgeslm/fw/intents/status" && m.Payload.Contains("WaterLawn"), Wait, "retrained on the edited file");
            Assert.Equal("ready", ready.Json.GetProperty("status").GetString());
            await client.PublishAsync("edgeslm/fw/transcript", """{"text":"water the lawn","id":"w1"}""");
            Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/fw/intent" && Id(m) == "w1", Wait, "answer from the new intents");
            Assert.Equal("WaterLawn", answer.Json.GetProperty("intent").GetString());

            File.WriteAllText(file, "intents: [this is: not {valid");
            await client.WaitForAsync(m => m.Topic == "edgeslm/fw/intents/status" && m.Payload.Contains("\"error\""), Wait, "error status for the broken file");
            await client.PublishAsync("edgeslm/fw/transcript", """{"text":"open the garage door","id":"w2"}""");
            Received still = await client.WaitForAsync(m => m.Topic == "edgeslm/fw/intent" && Id(m) == "w2", Wait, "answer after the broken edit");
            Assert.Equal("OpenGarage", still.Json.GetProperty("intent").GetString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Health_command_says_online_only_while_the_module_runs()
    {
        using var broker = Mosquitto.Start();
        (int before, string beforeOutput) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "health", "--broker", broker.Url, "--site", "hc", "--timeout", "2");
        Assert.Equal(1, before);
        Assert.Contains("edgeslm/hc/status", beforeOutput);
        await using (var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "hc" }))
        {
            (int running, string output) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "health", "--broker", broker.Url, "--site", "hc");
            Assert.True(running == 0, output);
        }
        // Stopped cleanly: the retained status says offline.
        (int after, string afterOutput) = ModuleProcess.RunToEnd(TimeSpan.FromSeconds(60), "health", "--broker", broker.Url, "--site", "hc");
        Assert.Equal(1, after);
        Assert.Contains("offline", afterOutput);
    }

    [Fact]
    public async Task Hermes_intentFilter_that_excludes_the_intent_gives_intentNotRecognized_with_the_request_fields()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url);
        await using var client = await TestClient.ConnectAsync(broker.Port, "hermes/#");

        await client.PublishAsync("hermes/nlu/query", """{"input":"turn on the kitchen lights","siteId":"hall","id":"req-18","intentFilter":["HassGetWeather"],"sessionId":"s-1","customData":"x"}""");
        Received answer = await client.WaitForAsync(m => m.Topic == "hermes/nlu/intentNotRecognized", Wait, "intentNotRecognized");
        Assert.Equal("turn on the kitchen lights", answer.Json.GetProperty("input").GetString());
        Assert.Equal("hall", answer.Json.GetProperty("siteId").GetString());
        Assert.Equal("req-18", answer.Json.GetProperty("id").GetString());
        Assert.Equal("s-1", answer.Json.GetProperty("sessionId").GetString());
        Assert.Equal("x", answer.Json.GetProperty("customData").GetString());
        Assert.DoesNotContain(client.Messages, m => m.Topic.StartsWith("hermes/intent/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Native_request_with_response_topic_is_answered_there_with_its_correlation_data()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "pi1" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "replies/test", "edgeslm/pi1/intent");

        byte[] correlation = [1, 2, 3, 250];
        await client.PublishAsync("edgeslm/pi1/transcript", """{"text":"set a timer for ten minutes","id":"n-1"}""", responseTopic: "replies/test", correlation: correlation);
        Received reply = await client.WaitForAsync(m => m.Topic == "replies/test", Wait, "reply on the response topic");
        Assert.Equal(correlation, reply.CorrelationData);
        Assert.Equal("HassStartTimer", reply.Json.GetProperty("intent").GetString());
        Assert.True(reply.Json.GetProperty("recognized").GetBoolean());
        Assert.Equal("n-1", reply.Json.GetProperty("id").GetString());
        Assert.Equal("pi1", reply.Json.GetProperty("siteId").GetString());
        Assert.Equal("set a timer for ten minutes", reply.Json.GetProperty("text").GetString());

        // Plain text, no response topic: the intent topic, with an id derived from the message.
        await client.PublishAsync("edgeslm/pi1/transcript", "what's the weather like tomorrow");
        Received plain = await client.WaitForAsync(m => m.Topic == "edgeslm/pi1/intent", Wait, "answer on the intent topic");
        Assert.Equal("HassGetWeather", plain.Json.GetProperty("intent").GetString());
        Assert.StartsWith("m-", plain.Json.GetProperty("id").GetString());
    }

    [Fact]
    public async Task Malformed_messages_are_answered_on_the_error_topics_and_the_module_goes_on()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "pi2", ["MaxPayloadBytes"] = "1024" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "hermes/error/nlu", "edgeslm/pi2/error", "edgeslm/pi2/intent");

        await client.PublishAsync("hermes/nlu/query", "{not json");
        await client.PublishAsync("hermes/nlu/query", """{"siteId":"a","id":"h-missing"}""");
        await client.PublishAsync("hermes/nlu/query", """{"input":"   ","id":"h-empty"}""");
        await client.PublishAsync("hermes/nlu/query", """{"input":42,"id":"h-type"}""");
        await client.PublishAsync("edgeslm/pi2/transcript", new byte[] { 0x74, 0x75, 0xC3, 0x28, 0x6E });
        await client.PublishAsync("edgeslm/pi2/transcript", """{"text":"%s","id":"n-big"}""".Replace("%s", new string('a', 2000)));
        await client.PublishAsync("edgeslm/pi2/transcript", """{"id":"n-missing"}""");
        await client.PublishAsync("edgeslm/pi2/transcript", "");
        await client.PublishAsync("edgeslm/pi2/transcript", """{"text":"turn off the bedroom lights","id":"n-good"}""");

        await client.WaitForAsync(all => all.Count(m => m.Topic.EndsWith("error", StringComparison.Ordinal) || m.Topic.EndsWith("nlu", StringComparison.Ordinal)) >= 8
            && all.Any(m => m.Topic == "edgeslm/pi2/intent"), Wait, "8 errors and one answer");
        Received[] hermesErrors = client.Messages.Where(m => m.Topic == "hermes/error/nlu").ToArray();
        Received[] nativeErrors = client.Messages.Where(m => m.Topic == "edgeslm/pi2/error").ToArray();
        Assert.Equal(4, hermesErrors.Length);
        Assert.Equal(4, nativeErrors.Length);
        Assert.Contains(hermesErrors, m => m.Json.GetProperty("error").GetString()!.StartsWith("invalid JSON", StringComparison.Ordinal) && Id(m).StartsWith("m-", StringComparison.Ordinal));
        Assert.Contains(hermesErrors, m => Id(m) == "h-missing" && m.Json.GetProperty("error").GetString() == "missing \"input\"" && m.Json.GetProperty("siteId").GetString() == "a");
        Assert.Contains(hermesErrors, m => Id(m) == "h-empty" && m.Json.GetProperty("error").GetString() == "empty input");
        Assert.Contains(hermesErrors, m => Id(m) == "h-type" && m.Json.GetProperty("error").GetString()!.Contains("must be a string"));
        Assert.Contains(nativeErrors, m => m.Json.GetProperty("error").GetString() == "payload is not valid UTF-8");
        Assert.Contains(nativeErrors, m => m.Json.GetProperty("error").GetString()!.Contains("over the limit of 1024 bytes"));
        Assert.Contains(nativeErrors, m => Id(m) == "n-missing" && m.Json.GetProperty("error").GetString() == "missing \"text\"");
        Assert.Contains(nativeErrors, m => m.Json.GetProperty("error").GetString() == "empty transcript");
        Received good = client.Messages.Single(m => m.Topic == "edgeslm/pi2/intent");
        Assert.Equal("n-good", Id(good));
        Assert.Equal("HassTurnOff", good.Json.GetProperty("intent").GetString());
        Assert.Equal(8, module.Counters.Inference.Snapshot().Errors);
    }

    [Fact]
    public async Task Embedded_broker_serves_the_module_and_its_clients()
    {
        await using var module = await InProcessModule.StartAsync(models, "embedded", new Dictionary<string, string?> { ["HomeAssistant:Discovery"] = "true", ["SiteId"] = "emb" });
        int port = module.Service.EmbeddedBrokerPort!.Value;
        await using var client = await TestClient.ConnectAsync(port, "edgeslm/emb/#", "homeassistant/#");
        Received config = await client.WaitForAsync(m => m.Topic == "homeassistant/event/edgeslm_emb/intent/config", Wait, "discovery config");
        // Retained: a client that subscribes afterwards gets it too (the first may have seen it live).
        await using (var late = await TestClient.ConnectAsync(port, "homeassistant/#"))
        {
            Received again = await late.WaitForAsync(m => m.Topic == "homeassistant/event/edgeslm_emb/intent/config", Wait, "retained discovery config");
            Assert.True(again.Retain);
        }
        string[] eventTypes = config.Json.GetProperty("event_types").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Contains("HassTurnOn", eventTypes);
        Assert.Contains("not_recognized", eventTypes);
        Assert.Equal("edgeslm/emb/event", config.Json.GetProperty("state_topic").GetString());
        Received status = await client.WaitForAsync(m => m.Topic == "edgeslm/emb/status", Wait, "status");
        Assert.Equal("online", status.Payload);

        await client.PublishAsync("edgeslm/emb/transcript", "switch off the hallway lights");
        Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/emb/intent", Wait, "answer");
        Assert.Equal("HassTurnOff", answer.Json.GetProperty("intent").GetString());
        Received haEvent = await client.WaitForAsync(m => m.Topic == "edgeslm/emb/event", Wait, "HA event");
        Assert.Equal("HassTurnOff", haEvent.Json.GetProperty("event_type").GetString());
    }

    [Fact]
    public async Task Intents_set_retrains_in_the_background_and_swaps_the_new_intents_in()
    {
        using var broker = Mosquitto.Start();
        await using var module = await InProcessModule.StartAsync(models, broker.Url, new Dictionary<string, string?> { ["SiteId"] = "re" });
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/re/#");
        const string yaml = """
            intents:
              OrderPizza:
                data:
                  - sentences:
                      - "order (a|one|two) {topping} pizza[s]"
                      - "i want [a] {topping} pizza"
                      - "get me [a] pizza [with {topping}]"
              WaterPlants:
                data:
                  - sentences:
                      - "water the (plants|garden|flowers)"
                      - "(start|turn on) the (sprinklers|irrigation)"
                      - "the plants need water"
            lists:
              topping:
                values: [pepperoni, mushroom, margherita, hawaiian]
            """;
        await client.PublishAsync("edgeslm/re/intents/set", yaml, retain: true);
        Received ready = await client.WaitForAsync(m => m.Topic == "edgeslm/re/intents/status" && m.Payload.Contains("\"ready\""), Wait, "status ready");
        Assert.Equal(["OrderPizza", "WaterPlants"], ready.Json.GetProperty("intentNames").EnumerateArray().Select(e => e.GetString()).ToArray());

        await client.PublishAsync("edgeslm/re/transcript", """{"text":"order a pepperoni pizza","id":"p1"}""");
        Received answer = await client.WaitForAsync(m => m.Topic == "edgeslm/re/intent" && Id(m) == "p1", Wait, "answer with the new intents");
        Assert.Equal("OrderPizza", answer.Json.GetProperty("intent").GetString());

        await client.PublishAsync("edgeslm/re/intents/set", "intents:\n  Bad/Name:\n    data: []\n", retain: true);
        Received error = await client.WaitForAsync(m => m.Topic == "edgeslm/re/intents/status" && m.Payload.Contains("\"error\""), Wait, "status error");
        Assert.Contains("Bad/Name", error.Json.GetProperty("error").GetString());
        await client.PublishAsync("edgeslm/re/transcript", """{"text":"water the flowers","id":"p2"}""");
        Received still = await client.WaitForAsync(m => m.Topic == "edgeslm/re/intent" && Id(m) == "p2", Wait, "answer after a rejected update");
        Assert.Equal("WaterPlants", still.Json.GetProperty("intent").GetString());
        await client.PublishAsync("edgeslm/re/intents/set", "", retain: true);
    }

    [Fact]
    public async Task Module_process_killed_mid_stream_and_restarted_answers_every_transcript()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/mk/intent", "edgeslm/mk/status");
        string[] args = ["run", "--broker", broker.Url, "--site", "mk", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0), "--threads", "1", "--Mqtt:ClientId", "edgeslm-mk"];
        var first = ModuleProcess.Start(args);
        try
        {
            await client.WaitForAsync(m => m.Topic == "edgeslm/mk/status" && m.Payload == "online", Wait, "module online");
            string[] sentences = Sentences(200);
            for (int i = 0; i < sentences.Length; i++)
            {
                await client.PublishAsync("edgeslm/mk/transcript", AnswerTally.Request($"mk-{i}", sentences[i]));
            }
            await client.WaitForAsync(all => all.Count(m => m.Topic == "edgeslm/mk/intent") >= 10, Wait, "the first answers");
        }
        finally
        {
            first.Kill();
            first.Dispose();
        }
        int beforeRestart = client.Messages.Count(m => m.Topic == "edgeslm/mk/intent");
        using var second = ModuleProcess.Start(args);
        var answered = await client.WaitForAsync(all => all.Where(m => m.Topic == "edgeslm/mk/intent").Select(Id).Distinct().Count() == 200, TimeSpan.FromSeconds(180), "all 200 answers");
        Assert.True(beforeRestart < 200, "the module was killed before it had answered everything");
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"mk-{i}").Order(), answered.Where(m => m.Topic == "edgeslm/mk/intent").Select(Id).Distinct().Order());
    }

    [Fact]
    public async Task Three_instances_on_a_shared_subscription_answer_each_message_exactly_once()
    {
        using var broker = Mosquitto.Start();
        await using var client = await TestClient.ConnectAsync(broker.Port, "edgeslm/sh/intent");
        var settings = new Dictionary<string, string?> { ["SiteId"] = "sh", ["Mqtt:SharedGroup"] = "edgeslm", ["Profiles"] = "native" };
        await using var a = await InProcessModule.StartAsync(models, broker.Url, settings);
        await using var b = await InProcessModule.StartAsync(models, broker.Url, settings);
        await using var c = await InProcessModule.StartAsync(models, broker.Url, settings);
        string[] sentences = Sentences(150);
        for (int i = 0; i < sentences.Length; i++)
        {
            await client.PublishAsync("edgeslm/sh/transcript", AnswerTally.Request($"sh-{i}", sentences[i]));
        }
        await client.WaitForAsync(all => all.Select(Id).Distinct().Count() == 150, TimeSpan.FromSeconds(120), "150 answers");
        await Task.Delay(1000, TestContext.Current.CancellationToken); // a duplicate would arrive now
        Assert.Equal(150, client.Messages.Count);
        Assert.Equal(150, client.Messages.Select(Id).Distinct().Count());
        long[] perInstance = [a.Counters.Inference.Snapshot().Count, b.Counters.Inference.Snapshot().Count, c.Counters.Inference.Snapshot().Count];
        Assert.Equal(150, perInstance.Sum());
        Assert.All(perInstance, n => Assert.True(n > 0, $"every instance takes a share: {string.Join(", ", perInstance)}"));
    }

    private static string[] Sentences(int count) => TestEnvironment.Sentences(count).ToArray();
}
