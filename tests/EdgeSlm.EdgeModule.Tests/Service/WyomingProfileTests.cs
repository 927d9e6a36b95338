using System.Net.Sockets;
using System.Net;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Service;

/// <summary>The module with the wyoming profile, as <c>edgeslm run --profile wyoming</c> builds it: no MQTT, answers over TCP.</summary>
public sealed class WyomingProfileTests(ConvertedModels models)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Wyoming_alone_starts_no_broker_and_answers_a_transcript_counted_in_telemetry()
    {
        await using var module = await InProcessModule.StartAsync(models, "embedded", new Dictionary<string, string?>
        {
            ["Profiles"] = "wyoming",
            ["Wyoming:Port"] = "0",
            ["Wyoming:Address"] = "127.0.0.1",
        }, waitForConnection: false);
        Assert.Null(module.Service.EmbeddedBrokerPort);
        Assert.True(module.Service.IsHealthy);
        int port = module.Service.WyomingPort ?? throw new InvalidOperationException("no Wyoming port");

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port, TestContext.Current.CancellationToken);
        NetworkStream stream = tcp.GetStream();
        var reader = new WyomingEventReader(stream, new WyomingSettings().Limits);
        await WyomingEventWriter.WriteAsync(stream, WyomingEvent.Create("transcript", w =>
        {
            w.WriteString("text", "turn on the kitchen lights");
            w.WriteStartObject("context");
            w.WriteString("conversation_id", "c-1");
            w.WriteEndObject();
        }), TestContext.Current.CancellationToken);
        WyomingEvent answer = (await reader.ReadAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(Wait, TestContext.Current.CancellationToken))!;

        Assert.Equal("intent", answer.Type);
        Assert.Equal("HassTurnOn", answer.String("name"));
        Assert.Equal("c-1", answer.Data["context"].GetProperty("conversation_id").GetString());
        Assert.Equal(1, module.Counters.Inference.Snapshot().Count);
        // Nothing to connect to: Connected completes at once, so telemetry (the thermal governor) runs.
        Assert.True(module.Service.Connected.IsCompleted);
    }
}
