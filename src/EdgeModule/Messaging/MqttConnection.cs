using System.Security.Cryptography.X509Certificates;
using MQTTnet.Formatter;
using MQTTnet.Protocol;
using MQTTnet;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Messaging;

/// <summary>A message received on a subscription, with the connection it came on (acknowledgements belong to it).</summary>
public sealed record ReceivedMessage(MqttApplicationMessageReceivedEventArgs Args, long Connection, long ReceivedTimestamp)
{
    public MqttApplicationMessage Message => Args.ApplicationMessage;
}

/// <summary>
/// The module's one MQTT client: a persistent session (clean start off, session expiry), QoS 1 subscriptions,
/// manual acknowledgement, a retained online/offline status with a last will, and reconnection with exponential
/// backoff and jitter. Messages are acknowledged only when <see cref="AcknowledgeAsync"/> is called, after their
/// answer is published, so anything unanswered when the module or the broker dies is delivered again.
/// </summary>
public sealed class MqttConnection : IAsyncDisposable
{
    private readonly IMqttClient _client;
    private readonly Func<CancellationToken, Task<MqttClientOptions>> _options;
    private readonly MqttSettings _settings;
    private readonly IReadOnlyList<string> _subscriptions;
    private readonly Func<ReceivedMessage, Task> _onMessage;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _connectedSignal = new(0);
    private TaskCompletionSource _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _connection;
    private volatile bool _stopping, _renewing;
    private volatile MqttProtocolVersion _protocolVersion;

    public MqttConnection(MqttSettings settings, BrokerAddress address, string clientId, string statusTopic,
        IReadOnlyList<string> subscriptions, Func<ReceivedMessage, Task> onMessage, ILogger logger)
        : this(settings, Fixed(BuildOptions(settings, address, clientId, statusTopic)), statusTopic, subscriptions, onMessage, logger)
    {
    }

    /// <summary>
    /// A connection whose options are built by <paramref name="options"/> before every (re)connection, so that
    /// credentials can change between them (SAS tokens). With no <paramref name="statusTopic"/>, no online/offline
    /// status is published (IoT Hub closes a connection that publishes outside its own topics).
    /// <paramref name="settings"/> gives the keep-alive and the reconnection backoff.
    /// </summary>
    public MqttConnection(MqttSettings settings, Func<CancellationToken, Task<MqttClientOptions>> options, string? statusTopic,
        IReadOnlyList<string> subscriptions, Func<ReceivedMessage, Task> onMessage, ILogger logger)
    {
        _settings = settings;
        _subscriptions = subscriptions;
        _onMessage = onMessage;
        _logger = logger;
        StatusTopic = statusTopic;
        _client = new MqttClientFactory().CreateMqttClient();
        _options = options;
        _client.ApplicationMessageReceivedAsync += OnReceived;
        _client.DisconnectedAsync += OnDisconnected;
    }

    private static Func<CancellationToken, Task<MqttClientOptions>> Fixed(MqttClientOptions options) => _ => Task.FromResult(options);

    public string? StatusTopic { get; }
    public bool IsConnected => _client.IsConnected;

    /// <summary>Which connection is current: a message received on an earlier one must not be acknowledged on this one.</summary>
    public long Connection => Interlocked.Read(ref _connection);

    /// <summary>Raised after each successful connection and subscription (the first and every reconnection).</summary>
    public event Func<bool, Task>? Connected;

    private static MqttClientOptions BuildOptions(MqttSettings settings, BrokerAddress address, string clientId, string statusTopic)
    {
        bool v5 = settings.ProtocolVersion is "5" or "5.0";
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer(address.Host, address.Port)
            .WithClientId(clientId)
            .WithProtocolVersion(v5 ? MqttProtocolVersion.V500 : MqttProtocolVersion.V311)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(settings.KeepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithWillTopic(statusTopic)
            .WithWillPayload("offline"u8.ToArray())
            .WithWillRetain(true)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        builder = v5
            ? builder.WithCleanStart(false).WithSessionExpiryInterval((uint)settings.SessionExpirySeconds)
            : builder.WithCleanSession(false);
        builder = WithSecurity(builder, settings, address);
        return builder.Build();
    }

    /// <summary>Credentials and TLS (server validation against the CA file or the system store, client certificate).</summary>
    internal static MqttClientOptionsBuilder WithSecurity(MqttClientOptionsBuilder builder, MqttSettings settings, BrokerAddress address)
    {
        if (!string.IsNullOrEmpty(settings.Username))
        {
            builder = builder.WithCredentials(settings.Username, settings.Password ?? "");
        }
        if (address.Tls)
        {
            builder = builder.WithTlsOptions(tls =>
            {
                tls.UseTls(true).WithTargetHost(address.Host);
                if (!string.IsNullOrEmpty(settings.CaFile))
                {
                    // Trust exactly this CA for the broker (a private CA is the common case on a LAN).
                    var chain = new X509Certificate2Collection();
                    chain.ImportFromPemFile(settings.CaFile);
                    tls.WithTrustChain(chain);
                }
                if (!string.IsNullOrEmpty(settings.ClientCertificateFile))
                {
                    using var pem = X509Certificate2.CreateFromPemFile(settings.ClientCertificateFile, settings.ClientKeyFile);
                    // SslStream on Linux needs the key in a form it can export to OpenSSL: round-trip through PKCS#12.
                    X509Certificate2 certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
                    tls.WithClientCertificates(new X509Certificate2Collection(certificate));
                }
            });
        }
        return builder;
    }

    /// <summary>Connects, and reconnects after every loss, until <paramref name="stopping"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        int failures = 0;
        while (!stopping.IsCancellationRequested)
        {
            if (!_client.IsConnected)
            {
                try
                {
                    MqttClientOptions options = await _options(stopping);
                    _protocolVersion = options.ProtocolVersion;
                    MqttClientConnectResult result = await _client.ConnectAsync(options, stopping);
                    long connection = Interlocked.Increment(ref _connection);
                    await SubscribeAsync(stopping);
                    if (StatusTopic is not null) await _client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(StatusTopic).WithPayload("online"u8.ToArray())
                        .WithRetainFlag(true).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build(), stopping);
                    failures = 0;
                    _logger.LogInformation("Connected to the broker (session {SessionState}, connection {Connection})",
                        result.IsSessionPresent ? "resumed" : "new", connection);
                    Interlocked.Exchange(ref _connected, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                    if (Connected is { } handler)
                    {
                        await handler(result.IsSessionPresent);
                    }
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    failures++;
                    TimeSpan delay = Backoff(failures);
                    _logger.LogWarning("Cannot connect to the broker ({Reason}); retrying in {Delay} ms", e.Message, (int)delay.TotalMilliseconds);
                    try
                    {
                        await Task.Delay(delay, stopping);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                    continue;
                }
            }
            try
            {
                await _connectedSignal.WaitAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Exponential backoff with full jitter, so a fleet does not reconnect in lockstep after a broker restart.</summary>
    private TimeSpan Backoff(int failures)
    {
        double ceiling = Math.Min(_settings.ReconnectMaxMilliseconds, _settings.ReconnectMinMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20)));
        return TimeSpan.FromMilliseconds(_settings.ReconnectMinMilliseconds / 2.0 + Random.Shared.NextDouble() * (ceiling - _settings.ReconnectMinMilliseconds / 2.0));
    }

    private async Task SubscribeAsync(CancellationToken cancellation)
    {
        var builder = new MqttClientSubscribeOptionsBuilder();
        foreach (string filter in _subscriptions)
        {
            builder.WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce));
        }
        MqttClientSubscribeResult result = await _client.SubscribeAsync(builder.Build(), cancellation);
        foreach (MqttClientSubscribeResultItem item in result.Items)
        {
            if (item.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2)
            {
                throw new InvalidOperationException($"the broker refused the subscription to {item.TopicFilter.Topic} ({item.ResultCode})");
            }
        }
    }

    private Task OnReceived(MqttApplicationMessageReceivedEventArgs args)
    {
        args.AutoAcknowledge = false;
        return _onMessage(new ReceivedMessage(args, Connection, System.Diagnostics.Stopwatch.GetTimestamp()));
    }

    private Task OnDisconnected(MqttClientDisconnectedEventArgs args)
    {
        if (_renewing)
        {
            _renewing = false;
            _logger.LogInformation("Reconnecting with new credentials");
        }
        else if (args.ClientWasConnected && !_stopping)
        {
            _logger.LogWarning("Lost the broker ({Reason}{Detail})", args.Reason, args.Exception is null ? "" : ": " + args.Exception.Message);
        }
        _connectedSignal.Release();
        return Task.CompletedTask;
    }

    /// <summary>Publishes at QoS 1 and waits for the broker's acknowledgement, waiting out disconnections.</summary>
    public async Task PublishAsync(OutgoingMessage message, CancellationToken cancellation)
    {
        var builder = new MqttApplicationMessageBuilder()
            .WithTopic(message.Topic)
            .WithPayload(message.Payload)
            .WithRetainFlag(message.Retain)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        if (_protocolVersion == MqttProtocolVersion.V500)
        {
            if (message.ContentType is not null) builder.WithContentType(message.ContentType);
            if (message.CorrelationData is not null) builder.WithCorrelationData(message.CorrelationData);
        }
        MqttApplicationMessage built = builder.Build();
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            if (!_client.IsConnected)
            {
                await WaitConnectedAsync(cancellation);
            }
            try
            {
                MqttClientPublishResult result = await _client.PublishAsync(built, cancellation);
                if (!result.IsSuccess && result.ReasonCode != MqttClientPublishReasonCode.NoMatchingSubscribers)
                {
                    _logger.LogWarning("The broker refused a message on {Topic}: {Reason}", message.Topic, result.ReasonCode);
                }
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException && !_client.IsConnected)
            {
                // Lost the connection mid-publish: publish again once reconnected (QoS 1 allows the duplicate).
            }
        }
    }

    private async Task WaitConnectedAsync(CancellationToken cancellation)
    {
        while (!_client.IsConnected)
        {
            Task connected = Volatile.Read(ref _connected).Task;
            if (_client.IsConnected) break;
            await connected.WaitAsync(TimeSpan.FromSeconds(1), cancellation).ContinueWith(_ => { }, TaskScheduler.Default);
            cancellation.ThrowIfCancellationRequested();
        }
    }

    /// <summary>
    /// Acknowledges a message once its answer is out. A message from an earlier connection is not acknowledged:
    /// the broker delivers it again on the new one, with a packet id that may now mean another message.
    /// </summary>
    public async Task<bool> AcknowledgeAsync(ReceivedMessage message, CancellationToken cancellation)
    {
        if (message.Message.QualityOfServiceLevel == MqttQualityOfServiceLevel.AtMostOnce)
        {
            return true;
        }
        if (message.Connection != Connection || !_client.IsConnected)
        {
            return false;
        }
        try
        {
            await message.Args.AcknowledgeAsync(cancellation);
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogDebug("Acknowledgement not sent ({Reason}); the broker will deliver the message again", e.Message);
            return false;
        }
    }

    /// <summary>
    /// Disconnects cleanly so that <see cref="RunAsync"/> connects again with freshly built options: how a SAS token
    /// is renewed, since MQTT 3.1.1 cannot re-authenticate a connection. The session and its unacknowledged
    /// messages survive on the broker.
    /// </summary>
    public async Task ReconnectAsync(CancellationToken cancellation)
    {
        if (!_client.IsConnected || _stopping)
        {
            return;
        }
        _renewing = true;
        try
        {
            await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogDebug("Disconnect before reconnecting was not clean: {Reason}", e.Message);
        }
    }

    /// <summary>Publishes "offline" (retained) and disconnects cleanly; the session stays on the broker.</summary>
    public async Task StopAsync(CancellationToken cancellation)
    {
        _stopping = true;
        if (_client.IsConnected)
        {
            try
            {
                if (StatusTopic is not null) await _client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(StatusTopic).WithPayload("offline"u8.ToArray())
                    .WithRetainFlag(true).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build(), cancellation);
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), cancellation);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogDebug("Disconnect was not clean: {Reason}", e.Message);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        _connectedSignal.Dispose();
        return ValueTask.CompletedTask;
    }
}
