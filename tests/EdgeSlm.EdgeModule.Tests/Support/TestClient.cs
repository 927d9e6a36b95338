using System.Collections.Concurrent;
using System.Text.Json;
using System.Text;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using MQTTnet;

namespace EdgeSlm.EdgeModule.Tests.Support;

/// <summary>A message the test client received.</summary>
public sealed record Received(string Topic, string Payload, byte[]? CorrelationData, bool Retain)
{
    public JsonElement Json => JsonDocument.Parse(Payload).RootElement;
}

/// <summary>
/// The other side of the module in tests: a real MQTTnet client with a persistent session that reconnects by
/// itself (so it survives broker restarts) and records everything it receives.
/// </summary>
public sealed class TestClient : IAsyncDisposable
{
    private readonly IMqttClient _client = new MqttClientFactory().CreateMqttClient();
    private readonly MqttClientOptions _options;
    private readonly string[] _filters;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<Received> _received = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private Task _reconnect = Task.CompletedTask;

    private TestClient(int port, string clientId, string[] filters)
    {
        _filters = filters;
        _options = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId(clientId)
            .WithProtocolVersion(MqttProtocolVersion.V500).WithCleanStart(false).WithSessionExpiryInterval(3600).Build();
        _client.ApplicationMessageReceivedAsync += e =>
        {
            MqttApplicationMessage m = e.ApplicationMessage;
            var received = new Received(m.Topic, Encoding.UTF8.GetString(m.Payload), m.CorrelationData, m.Retain);
            _received.Enqueue(received);
            MessageReceived?.Invoke(received);
            _arrived.Release();
            return Task.CompletedTask;
        };
    }

    public IReadOnlyCollection<Received> Messages => _received.ToArray();

    /// <summary>Raised on MQTTnet's receive thread for every message, before <see cref="WaitForAsync(Func{IReadOnlyCollection{Received}, bool}, TimeSpan, string)"/> sees it.</summary>
    public event Action<Received>? MessageReceived;

    public static async Task<TestClient> ConnectAsync(int port, params string[] filters)
    {
        var client = new TestClient(port, "test-" + Guid.NewGuid().ToString("N")[..8], filters);
        await client.ConnectOnceAsync();
        client._reconnect = Task.Run(client.KeepConnectedAsync);
        return client;
    }

    private async Task ConnectOnceAsync()
    {
        await _client.ConnectAsync(_options, _stop.Token);
        foreach (string filter in _filters)
        {
            await _client.SubscribeAsync(filter, MqttQualityOfServiceLevel.AtLeastOnce, _stop.Token);
        }
    }

    private async Task KeepConnectedAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(100, _stop.Token);
                if (!_client.IsConnected)
                {
                    await ConnectOnceAsync();
                }
            }
            catch (Exception)
            {
                // Broker down or restarting: try again on the next tick.
            }
        }
    }

    /// <summary>Publishes at QoS 1, retrying until the broker acknowledges (it may be restarting).</summary>
    public async Task PublishAsync(string topic, byte[] payload, bool retain = false, string? responseTopic = null, byte[]? correlation = null)
    {
        var builder = new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainFlag(retain);
        if (responseTopic is not null) builder.WithResponseTopic(responseTopic);
        if (correlation is not null) builder.WithCorrelationData(correlation);
        MqttApplicationMessage message = builder.Build();
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (_client.IsConnected)
                {
                    await _client.PublishAsync(message, _stop.Token);
                    return;
                }
            }
            catch (Exception) when (attempt < 600)
            {
            }
            if (attempt >= 600) throw new TimeoutException($"could not publish to {topic}");
            await Task.Delay(50);
        }
    }

    public Task PublishAsync(string topic, string payload, bool retain = false, string? responseTopic = null, byte[]? correlation = null) =>
        PublishAsync(topic, Encoding.UTF8.GetBytes(payload), retain, responseTopic, correlation);

    /// <summary>Waits until <paramref name="done"/> holds over what has arrived, or fails after <paramref name="timeout"/>.</summary>
    public async Task<IReadOnlyCollection<Received>> WaitForAsync(Func<IReadOnlyCollection<Received>, bool> done, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            IReadOnlyCollection<Received> all = Messages;
            if (done(all))
            {
                return all;
            }
            try
            {
                await _arrived.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}; received {Messages.Count}: {string.Join(" | ", Messages.TakeLast(5).Select(m => m.Topic + " " + m.Payload))}");
            }
        }
    }

    public async Task<Received> WaitForAsync(Func<Received, bool> match, TimeSpan timeout, string what) =>
        (await WaitForAsync(all => all.Any(match), timeout, what)).First(match);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _reconnect;
        try
        {
            await _client.DisconnectAsync();
        }
        catch (Exception)
        {
        }
        _client.Dispose();
    }
}
