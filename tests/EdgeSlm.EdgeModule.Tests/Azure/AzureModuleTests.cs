using System.Text.Json;
using System.Text;
using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Testing;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Tests.Azure;

/// <summary>
/// The module as an IoT Edge module, against a real mosquitto standing in for edgeHub (plain TCP; mosquitto takes
/// any user name and password). A test client plays IoT Hub: it answers the twin request, patches desired
/// properties, invokes direct methods and sends transcripts to the module's input.
/// </summary>
public sealed class AzureModuleTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private const string KeyBase64 = "ZWRnZXNsbS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm";
    private const string Identity = "devices/pi-kitchen/modules/edgeslm";
    private const string Output = Identity + "/messages/events/%24.on=intents&%24.ct=application%2Fjson&%24.ce=utf-8";
    private const string Errors = Identity + "/messages/events/%24.on=errors&%24.ct=application%2Fjson&%24.ce=utf-8";
    private const string Input = Identity + "/inputs/transcripts/%24.cdid=pi-kitchen&%24.cmid=asr";

    private static readonly string[] HubFilters = ["$iothub/twin/GET/#", "$iothub/twin/PATCH/properties/reported/#", "$iothub/methods/res/#", Identity + "/messages/events/#"];

    private static Dictionary<string, string?> AzureSettings(Mosquitto broker) => new()
    {
        ["Azure:ConnectionString"] = $"HostName=myhub.azure-devices.net;DeviceId=pi-kitchen;ModuleId=edgeslm;SharedAccessKey={KeyBase64};GatewayHostName=127.0.0.1",
        ["Azure:Port"] = broker.Port.ToString(),
        ["Azure:Tls"] = "false",
    };

    /// <summary>Plays IoT Hub's side of the twin request: the module asks at every connection.</summary>
    private static async Task AnswerTwinAsync(TestClient hub, string desiredJson, int answered = 0)
    {
        IReadOnlyCollection<Received> all = await hub.WaitForAsync(a => a.Count(m => m.Topic.StartsWith("$iothub/twin/GET/", StringComparison.Ordinal)) > answered, Wait, "twin GET");
        Received get = all.Where(m => m.Topic.StartsWith("$iothub/twin/GET/", StringComparison.Ordinal)).ElementAt(answered);
        string rid = IotHubTopics.QueryValue(get.Topic, "$rid")!;
        await hub.PublishAsync($"$iothub/twin/res/200/?$rid={rid}", "{\"desired\":" + desiredJson + ",\"reported\":{\"$version\":1}}");
    }

    private static Task<Received> ReportedAsync(TestClient hub, Func<JsonElement, bool> match, string what) =>
        hub.WaitForAsync(m => m.Topic.StartsWith("$iothub/twin/PATCH/properties/reported/?$rid=", StringComparison.Ordinal) && match(m.Json), Wait, what);

    private static bool Training(JsonElement reported, string status) =>
        reported.TryGetProperty("lastTraining", out JsonElement t) && t.GetProperty("status").GetString() == status;

    [Fact]
    public async Task Transcripts_on_the_input_are_answered_on_the_output_with_the_native_result_json()
    {
        using var broker = Mosquitto.Start();
        await using var hub = await TestClient.ConnectAsync(broker.Port, HubFilters);
        await using var module = await InProcessModule.StartAsync(models, broker.Url, AzureSettings(broker));

        await hub.PublishAsync(Input, """{"text":"turn on the kitchen lights","id":"a-1"}""");
        Received answer = await hub.WaitForAsync(m => m.Topic == Output && m.Payload.Contains("\"a-1\""), Wait, "answer on the intents output");
        Assert.Equal("HassTurnOn", answer.Json.GetProperty("intent").GetString());
        Assert.Equal("turn on the kitchen lights", answer.Json.GetProperty("text").GetString());
        Assert.True(answer.Json.GetProperty("recognized").GetBoolean());
        Assert.Equal(JsonValueKind.Array, answer.Json.GetProperty("slots").ValueKind);
        Assert.True(answer.Json.TryGetProperty("elapsedMs", out _));

        await hub.PublishAsync(Input, "what's the weather like tomorrow");
        Received plain = await hub.WaitForAsync(m => m.Topic == Output && m.Payload.Contains("weather"), Wait, "answer to plain text");
        Assert.Equal("HassGetWeather", plain.Json.GetProperty("intent").GetString());

        await hub.PublishAsync(Input, """{"id":"a-2"}""");
        await hub.PublishAsync(Identity + "/inputs/audio/", "turn off the lights");
        IReadOnlyCollection<Received> all = await hub.WaitForAsync(a => a.Count(m => m.Topic == Errors) >= 2, Wait, "two errors on the errors output");
        Received[] errors = all.Where(m => m.Topic == Errors).ToArray();
        Assert.Contains(errors, m => m.Json.GetProperty("id").GetString() == "a-2" && m.Json.GetProperty("error").GetString() == "missing \"text\"");
        Assert.Contains(errors, m => m.Json.GetProperty("error").GetString()!.Contains("input 'audio'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Twin_desired_properties_retrain_without_restart_and_reported_properties_describe_the_module()
    {
        using var broker = Mosquitto.Start();
        await using var hub = await TestClient.ConnectAsync(broker.Port, HubFilters);
        await using var module = await InProcessModule.StartAsync(models, broker.Url, AzureSettings(broker));

        await AnswerTwinAsync(hub, """{"threshold":0.97,"$version":2}""");
        Received first = await ReportedAsync(hub, r => Training(r, "ready"), "reported after the twin");
        JsonElement reported = first.Json;
        Assert.Equal(0.97, reported.GetProperty("threshold").GetDouble(), 4);
        Assert.Equal(0.97, reported.GetProperty("lastTraining").GetProperty("threshold").GetDouble(), 4);
        Assert.Equal(2, reported.GetProperty("desiredVersion").GetInt64());
        Assert.Equal(Kernels.Dispatch.KernelPaths.Name(Kernels.Dispatch.KernelPaths.Default), reported.GetProperty("kernelPath").GetString());
        Assert.Contains("MiniLM", reported.GetProperty("model").GetString());
        Assert.False(string.IsNullOrEmpty(reported.GetProperty("version").GetString()));
        Assert.True(reported.GetProperty("lastTraining").GetProperty("examples").GetInt32() > 0);
        Assert.Equal(0.97, module.Service.Runtime.Engine.Threshold, 4);

        const string yaml = """
            intents:
              OrderPizza:
                data:
                  - sentences:
                      - "order (a|one|two) {topping} pizza[s]"
                      - "i want [a] {topping} pizza"
              WaterPlants:
                data:
                  - sentences:
                      - "water the (plants|garden|flowers)"
                      - "the plants need water"
            lists:
              topping:
                values: [pepperoni, mushroom, margherita]
            """;
        await hub.PublishAsync("$iothub/twin/PATCH/properties/desired/?$version=3",
            JsonSerializer.Serialize(new Dictionary<string, object?> { ["intents"] = yaml, ["threshold"] = null, ["$version"] = 3 }));
        Received patched = await ReportedAsync(hub, r => Training(r, "ready") && r.GetProperty("desiredVersion").GetInt64() == 3, "reported after the patch");
        Assert.Equal("OrderPizza,WaterPlants", patched.Json.GetProperty("lastTraining").GetProperty("intentNames").GetString());
        Assert.NotEqual(0.97, patched.Json.GetProperty("threshold").GetDouble(), 4);

        await hub.PublishAsync(Input, """{"text":"water the flowers","id":"w-1"}""");
        Received answer = await hub.WaitForAsync(m => m.Topic == Output && m.Payload.Contains("\"w-1\""), Wait, "answer with the twin's intents");
        Assert.Equal("WaterPlants", answer.Json.GetProperty("intent").GetString());

        await hub.PublishAsync("$iothub/twin/PATCH/properties/desired/?$version=4", """{"threshold":"high","$version":4}""");
        Received refused = await ReportedAsync(hub, r => Training(r, "error"), "reported error for a bad threshold");
        Assert.Contains("threshold", refused.Json.GetProperty("lastTraining").GetProperty("error").GetString());
    }

    [Fact]
    public async Task Direct_methods_classify_reload_and_unknown_are_answered_with_status_and_request_id()
    {
        using var broker = Mosquitto.Start();
        await using var hub = await TestClient.ConnectAsync(broker.Port, HubFilters);
        await using var module = await InProcessModule.StartAsync(models, broker.Url, AzureSettings(broker));

        await hub.PublishAsync("$iothub/methods/POST/classify/?$rid=1", "\"set a timer for ten minutes\"");
        Received timer = await hub.WaitForAsync(m => m.Topic == "$iothub/methods/res/200/?$rid=1", Wait, "classify response 1");
        Assert.Equal("HassStartTimer", timer.Json.GetProperty("intent").GetString());
        Assert.Equal("set a timer for ten minutes", timer.Json.GetProperty("text").GetString());

        await hub.PublishAsync("$iothub/methods/POST/classify/?$rid=2", """{"text":"turn off the bedroom lights"}""");
        Received off = await hub.WaitForAsync(m => m.Topic == "$iothub/methods/res/200/?$rid=2", Wait, "classify response 2");
        Assert.Equal("HassTurnOff", off.Json.GetProperty("intent").GetString());

        await hub.PublishAsync("$iothub/methods/POST/classify/?$rid=3", "{}");
        Received bad = await hub.WaitForAsync(m => m.Topic == "$iothub/methods/res/400/?$rid=3", Wait, "classify response 3 (400)");
        Assert.Equal("missing \"text\"", bad.Json.GetProperty("error").GetString());

        await hub.PublishAsync("$iothub/methods/POST/selfDestruct/?$rid=4", "null");
        Received unknown = await hub.WaitForAsync(m => m.Topic == "$iothub/methods/res/404/?$rid=4", Wait, "unknown method (404)");
        Assert.Contains("selfDestruct", unknown.Json.GetProperty("error").GetString());

        await hub.PublishAsync("$iothub/methods/POST/reload/?$rid=5", "null");
        Received reload = await hub.WaitForAsync(m => m.Topic == "$iothub/methods/res/200/?$rid=5", Wait, "reload response");
        Assert.Equal("ready", reload.Json.GetProperty("status").GetString());
        Assert.True(reload.Json.GetProperty("intents").GetInt32() > 3);
    }

    [Fact]
    public async Task Neither_the_key_nor_a_signature_appears_in_the_module_log()
    {
        using var broker = Mosquitto.Start();
        await using var hub = await TestClient.ConnectAsync(broker.Port, HubFilters);
        var log = new StringWriter();
        TextWriter stderr = Console.Error;
        long start = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        InProcessModule module;
        // The console logger takes Console.Error when the host is built: only this module's host writes here.
        Console.SetError(TextWriter.Synchronized(log));
        try
        {
            module = await InProcessModule.StartAsync(models, broker.Url, AzureSettings(broker));
        }
        finally
        {
            Console.SetError(stderr);
        }
        await using (module)
        {
            await AnswerTwinAsync(hub, """{"$version":1}""");
            await ReportedAsync(hub, r => Training(r, "ready"), "reported properties");
            await hub.PublishAsync(Input, "turn on the kitchen lights");
            await hub.WaitForAsync(m => m.Topic == Output, Wait, "an answer");
        }
        long end = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string text = log.ToString();
        Assert.Contains("Connected to the broker", text);
        Assert.Contains("pi-kitchen/edgeslm", text);
        Assert.DoesNotContain(KeyBase64, text);
        Assert.DoesNotContain("SharedAccessSignature", text);
        Assert.DoesNotContain("SharedAccessKey", text);
        byte[] key = Convert.FromBase64String(KeyBase64);
        for (long se = start + 3600 - 2; se <= end + 3600 + 2; se++)
        {
            string token = SasToken.Create("myhub.azure-devices.net/devices/pi-kitchen/modules/edgeslm", key, se);
            string signature = Uri.UnescapeDataString(token.Split("&sig=")[1].Split("&se=")[0]);
            Assert.DoesNotContain(signature, text);
            Assert.DoesNotContain(Uri.EscapeDataString(signature), text);
        }
    }

    [Fact]
    public async Task Token_is_renewed_by_reconnecting_before_it_expires()
    {
        using var broker = Mosquitto.Start();
        var logger = new RecordingLogger();
        var settings = new AzureSettings { Port = broker.Port, Tls = false };
        var topics = new IotHubTopics("myhub.azure-devices.net", "pi-kitchen", "edgeslm");
        byte[] key = Convert.FromBase64String(KeyBase64);
        var tokens = new SasTokenProvider(topics.ResourceUri, new SharedKeySigner(key), TimeSpan.FromSeconds(4));
        using var connector = new IotHubConnector(topics, "127.0.0.1", tokens, settings, 30, null, logger);
        var passwords = new List<string>();
        await using var connection = new MqttConnection(new MqttSettings(), async cancellation =>
        {
            MQTTnet.MqttClientOptions options = await connector.BuildOptionsAsync(cancellation);
            lock (passwords) passwords.Add(Encoding.UTF8.GetString(options.Credentials.GetPassword(options)));
            return options;
        }, null, [topics.InputFilter], _ => Task.CompletedTask, logger);
        int connections = 0;
        var twice = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.Connected += _ =>
        {
            if (Interlocked.Increment(ref connections) >= 3) twice.TrySetResult();
            return Task.CompletedTask;
        };
        using var stop = new CancellationTokenSource();
        Task run = connection.RunAsync(stop.Token), renew = connector.RenewTokensAsync(connection, stop.Token);

        await twice.Task.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        stop.Cancel();
        await Task.WhenAll(run, renew);
        string[] issued;
        lock (passwords) issued = passwords.ToArray();
        long[] expiries = issued.Select(p => long.Parse(p[(p.LastIndexOf("&se=", StringComparison.Ordinal) + 4)..])).ToArray();
        Assert.True(expiries.Length >= 3);
        Assert.All(expiries.Zip(expiries.Skip(1)), pair => Assert.True(pair.Second > pair.First, "each reconnection carries a later expiry"));
        Assert.Contains(logger.Lines, l => l.Contains("SAS token renewal", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Lines, l => l.Contains("Lost the broker", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Lines, l => issued.Any(p => l.Contains(p.Split("&sig=")[1].Split("&se=")[0], StringComparison.Ordinal)));
    }

    private sealed class RecordingLogger : ILogger
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get { lock (_lines) return _lines.ToArray(); }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines) _lines.Add($"{logLevel}: {formatter(state, exception)} {exception}");
        }
    }
}
