using System.Security.Cryptography.X509Certificates;
using EdgeSlm.EdgeModule.Messaging;
using MQTTnet.Formatter;
using MQTTnet;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// How to reach IoT Hub or edgeHub as one identity: MQTT 3.1.1 over TLS on 8883, client id <c>{deviceId}/{moduleId}</c>,
/// the user name with the API version, a fresh SAS token as the password at every connection, and a persistent
/// session (clean session off). MQTT 3.1.1 cannot re-authenticate a live connection, so <see cref="RenewTokensAsync"/>
/// reconnects with a new token at 80% of each token's lifetime, well before the hub would drop the connection.
/// </summary>
public sealed class IotHubConnector : IDisposable
{
    private readonly AzureSettings _settings;
    private readonly int _keepAliveSeconds;
    private readonly WorkloadClient? _workload;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private long _renewAtTicks = DateTimeOffset.MinValue.UtcTicks;

    public IotHubConnector(IotHubTopics topics, string host, SasTokenProvider tokens, AzureSettings settings, int keepAliveSeconds,
        WorkloadClient? workload, ILogger logger, TimeProvider? time = null)
    {
        Topics = topics;
        Host = host;
        Tokens = tokens;
        _settings = settings;
        _keepAliveSeconds = keepAliveSeconds;
        _workload = workload;
        _logger = logger;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>From a connection string, or from the IoT Edge environment with signing by the workload API.</summary>
    public static IotHubConnector Create(AzureSettings settings, MqttSettings mqtt, ILogger logger)
    {
        var lifetime = TimeSpan.FromMinutes(settings.TokenLifetimeMinutes);
        if (!string.IsNullOrWhiteSpace(settings.ConnectionString))
        {
            var connection = IotHubConnectionString.Parse(settings.ConnectionString);
            var topics = new IotHubTopics(connection.HostName, connection.DeviceId, connection.ModuleId);
            var tokens = new SasTokenProvider(topics.ResourceUri, new SharedKeySigner(connection.SharedAccessKey), lifetime);
            return new IotHubConnector(topics, connection.GatewayHostName ?? connection.HostName, tokens, settings, mqtt.KeepAliveSeconds, null, logger);
        }
        EdgeEnvironment edge = EdgeEnvironment.Read(settings.Environment);
        var workload = new WorkloadClient(edge.WorkloadSocket, edge.ApiVersion);
        var edgeTopics = new IotHubTopics(edge.IotHubHostName, edge.DeviceId, edge.ModuleId);
        var edgeTokens = new SasTokenProvider(edgeTopics.ResourceUri, new WorkloadSigner(workload, edge.ModuleId, edge.GenerationId), lifetime);
        return new IotHubConnector(edgeTopics, edge.GatewayHostName, edgeTokens, settings, mqtt.KeepAliveSeconds, workload, logger);
    }

    public IotHubTopics Topics { get; }

    /// <summary>The MQTT server: the gateway (edgeHub) when there is one, else the hub.</summary>
    public string Host { get; }

    public int Port => _settings.Port;

    public SasTokenProvider Tokens { get; }

    /// <summary>When the token of the current connection should be replaced.</summary>
    public DateTimeOffset RenewAt => new(Interlocked.Read(ref _renewAtTicks), TimeSpan.Zero);

    /// <summary>The options for the next connection, with a token signed now. Called by <see cref="MqttConnection"/> before each connection.</summary>
    public async Task<MqttClientOptions> BuildOptionsAsync(CancellationToken cancellation)
    {
        DateTimeOffset now = _time.GetUtcNow();
        (string token, DateTimeOffset expires) = await Tokens.CreateAsync(cancellation);
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer(Host, _settings.Port)
            .WithClientId(Topics.ClientId)
            .WithProtocolVersion(MqttProtocolVersion.V311)
            .WithCleanSession(false)
            .WithCredentials(Topics.UserName, token)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(_keepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(30));
        if (_settings.Tls)
        {
            X509Certificate2Collection? trust = await TrustAsync(cancellation);
            builder = builder.WithTlsOptions(tls =>
            {
                tls.UseTls(true).WithTargetHost(Host);
                if (trust is not null) tls.WithTrustChain(trust);
            });
        }
        Interlocked.Exchange(ref _renewAtTicks, (now + (expires - now) * 0.8).UtcTicks);
        return builder.Build();
    }

    /// <summary>The CA file, else (inside IoT Edge) the runtime's trust bundle, else the system's store.</summary>
    private async Task<X509Certificate2Collection?> TrustAsync(CancellationToken cancellation)
    {
        if (!string.IsNullOrEmpty(_settings.CaFile))
        {
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(_settings.CaFile);
            return chain;
        }
        return _workload is null ? null : await _workload.GetTrustBundleAsync(cancellation);
    }

    /// <summary>Reconnects <paramref name="connection"/> with a new token whenever the current one nears its expiry.</summary>
    public async Task RenewTokensAsync(MqttConnection connection, CancellationToken stopping)
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                TimeSpan wait = RenewAt - _time.GetUtcNow();
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait < TimeSpan.FromSeconds(30) ? wait : TimeSpan.FromSeconds(30), _time, stopping);
                    continue;
                }
                if (connection.IsConnected)
                {
                    _logger.LogInformation("SAS token renewal: reconnecting to {Host} with a new token", Host);
                    await connection.ReconnectAsync(stopping);
                }
                // Not connected: the next connection builds its options, and so a token, anyway.
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stopping);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose() => _workload?.Dispose();
}
