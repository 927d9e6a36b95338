using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Models.Gguf;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// The running module: loads the model and trains before the host reports ready, connects (to a broker, the
/// embedded one, or Azure IoT) and listens for Wyoming clients as the profiles say, hands transcripts to the one
/// <see cref="InferenceWorker"/> and new intents to the <see cref="IntentsReloader"/>, and watches the intents and
/// model files.
/// </summary>
public sealed class IntentService : IHostedService, IAsyncDisposable
{
    private readonly ModuleSettings _settings;
    private readonly ILogger<IntentService> _logger;
    private readonly ModuleCounters _counters;
    private readonly ProtocolProfile _profiles;
    private readonly ModuleTopics _topics;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _firstConnection = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<IDisposable> _watchers = [];
    private IntentRuntime? _runtime;
    private EmbeddedBroker? _broker;
    private AzureModule? _azure;
    private MqttConnection? _connection;
    private InferenceWorker? _worker;
    private WyomingServer? _wyoming;
    private StatusPublisher? _status;
    private IntentsReloader? _reloader;
    private Task _connectionLoop = Task.CompletedTask, _workerLoop = Task.CompletedTask;
    private bool _modelStatusPublished;

    public IntentService(ModuleSettings settings, ModuleCounters counters, ILogger<IntentService> logger)
    {
        _settings = settings;
        _counters = counters;
        _logger = logger;
        // IoT Hub and edgeHub take no topics but their own: with Azure configured, the module speaks only that.
        _profiles = settings.Azure.IsConfigured ? ProtocolProfile.Azure : settings.ParsedProfiles();
        _topics = new ModuleTopics(settings.SiteId);
    }

    /// <summary>True while the connection loop and the inference worker run (what the systemd watchdog checks).</summary>
    public bool IsHealthy => _runtime is not null && !_connectionLoop.IsCompleted && !_workerLoop.IsCompleted;

    /// <summary>Port of the embedded broker, when there is one.</summary>
    public int? EmbeddedBrokerPort => _broker?.Port;

    public IntentRuntime Runtime => _runtime ?? throw new InvalidOperationException("not started");

    /// <summary>The inference worker, for front ends other than MQTT.</summary>
    public InferenceWorker Worker => _worker ?? throw new InvalidOperationException("not started");

    /// <summary>Port of the Wyoming intent service, when the wyoming profile is on.</summary>
    public int? WyomingPort => _wyoming?.Port;

    /// <summary>Completes once the module is connected and subscribed for the first time (at start, without MQTT).</summary>
    public Task Connected => _firstConnection.Task;

    /// <summary>Publishes a message of the module's own (telemetry); waits out disconnections.</summary>
    public Task PublishAsync(OutgoingMessage message, CancellationToken cancellation) =>
        _connection is null ? Task.CompletedTask : _connection.PublishAsync(_azure?.Telemetry(message) ?? message, cancellation);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _runtime = IntentRuntime.Start(_settings.Runtime(), _logger);
        List<MessageProtocol> protocols = [];
        string endpoint;
        if (_profiles == ProtocolProfile.Azure)
        {
            _azure = new AzureModule(_settings.AzureModule(), IotHubConnector.Create(_settings.Azure, _settings.Mqtt, _logger), () => Runtime, _logger, _stopping.Token);
            _connection = _azure.CreateConnection(OnMessageAsync);
            protocols.Add(_azure.Protocol);
            endpoint = $"Azure IoT {_azure.Endpoint}";
        }
        else if ((_profiles & ~ProtocolProfile.Wyoming) != ProtocolProfile.None)
        {
            BrokerAddress address = BrokerAddress.Parse(_settings.Mqtt.Broker);
            if (address.Embedded)
            {
                _broker = await EmbeddedBroker.StartAsync(_settings.Mqtt.EmbeddedPort);
                address = address with { Port = _broker.Port };
                _logger.LogInformation("Embedded MQTT broker listening on port {Port}", _broker.Port);
            }
            if (_profiles.HasFlag(ProtocolProfile.Hermes)) protocols.Add(new HermesProtocol(_settings.Hermes.ErrorTopic));
            if (_profiles.HasFlag(ProtocolProfile.Native)) protocols.Add(new NativeProtocol(_settings.SiteId));
            string share = string.IsNullOrWhiteSpace(_settings.Mqtt.SharedGroup) ? "" : $"$share/{_settings.Mqtt.SharedGroup}/";
            List<string> subscriptions = [.. protocols.SelectMany(p => p.Subscriptions(share)), _topics.IntentsSet];
            _connection = new MqttConnection(_settings.Mqtt, address, ClientId(), _topics.Status, subscriptions, OnMessageAsync, _logger);
            endpoint = $"profiles {_settings.Profiles}, broker {(address.Embedded ? $"embedded:{address.Port}" : $"{address.Host}:{address.Port}{(address.Tls ? " (TLS)" : "")}")}";
        }
        else
        {
            endpoint = "profile wyoming only (no MQTT)";
        }
        _status = new StatusPublisher(_topics, _settings.HomeAssistant, _connection, _azure, _runtime, _logger, _stopping.Token);
        _reloader = new IntentsReloader(_runtime, _status, _logger, _stopping.Token);
        _worker = new InferenceWorker(_settings, protocols, _runtime, _connection, _counters, _logger);
        _workerLoop = Task.Run(() => _worker.RunAsync(_stopping.Token));
        if (_profiles.HasFlag(ProtocolProfile.Wyoming) && _azure is null)
        {
            StartWyoming(_worker);
        }
        if (_connection is not null)
        {
            _connection.Connected += OnConnectedAsync;
            _connectionLoop = _azure is null
                ? Task.Run(() => _connection.RunAsync(_stopping.Token))
                : Task.WhenAll(Task.Run(() => _connection.RunAsync(_stopping.Token)), Task.Run(() => _azure.RunAsync(_stopping.Token)));
        }
        else
        {
            // Nothing to connect to: Connected completes now, so telemetry's thermal governor runs (its publishes go nowhere).
            _connectionLoop = _wyoming!.Running;
            _firstConnection.TrySetResult();
        }
        if (!string.IsNullOrWhiteSpace(_settings.Intents) && File.Exists(_settings.Intents))
        {
            _watchers.Add(new FileWatcher(Path.GetFullPath(_settings.Intents), _reloader.OnIntentsFileChanged));
        }
        if (_azure is null && _runtime.ModelFile is string modelFile)
        {
            _watchers.Add(new FileWatcher(modelFile, _ => CheckModelFile()));
        }
        _logger.LogInformation("EdgeSlm running: site {Site}, {Endpoint}, {Threads} threads", _settings.SiteId, endpoint, _settings.Threads);
    }

    /// <summary>The Wyoming intent service, answering through the same worker (queue, batches, engine) as MQTT.</summary>
    private void StartWyoming(InferenceWorker worker)
    {
        var handler = new WyomingIntentHandler((text, cancellation) => worker.ClassifyAsync(text, null, cancellation), () => _runtime?.Engine,
            HomeAssistantIntents.ForIntents(_settings.Intents), _settings.Wyoming, _logger, _counters.Inference);
        _wyoming = new WyomingServer(_settings.Wyoming, handler, _logger);
        try
        {
            _wyoming.Start();
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new SettingsException($"Wyoming:Port: cannot listen on {_settings.Wyoming.Address} port {_settings.Wyoming.Port} ({e.Message})");
        }
        _logger.LogInformation("Wyoming intent service listening on {Address} port {Port}", _settings.Wyoming.Address, _wyoming.Port);
    }

    private string ClientId() => string.IsNullOrWhiteSpace(_settings.Mqtt.ClientId) ? $"edgeslm-{_settings.SiteId}" : _settings.Mqtt.ClientId;

    private async Task OnConnectedAsync(bool sessionPresent)
    {
        _firstConnection.TrySetResult();
        if (_azure is not null)
        {
            // IoT Hub takes only its own topics: status goes to the twin's reported properties.
            await _azure.OnConnectedAsync();
            return;
        }
        if (!_modelStatusPublished)
        {
            // Once: later reports (a changed model file) replace this retained message.
            _modelStatusPublished = true;
            await _status!.PublishModelStatusAsync("ready", Runtime.ModelWarning);
        }
        await _status!.PublishDiscoveryAsync(Runtime.Engine);
    }

    private async Task OnMessageAsync(ReceivedMessage message)
    {
        string topic = message.Message.Topic;
        if (_azure is not null && _azure.IsControl(topic))
        {
            _azure.HandleControl(message);
            await _connection!.AcknowledgeAsync(message, _stopping.Token);
            return;
        }
        if (_azure is null && topic == _topics.IntentsSet)
        {
            _reloader!.OnIntentsSet(topic, message.Message.Payload);
            await _connection!.AcknowledgeAsync(message, _stopping.Token);
            return;
        }
        await _worker!.EnqueueAsync(message, _stopping.Token);
    }

    /// <summary>
    /// The model file changed: the module keeps the model it loaded (a private copy, so even a file overwritten in
    /// place cannot touch it) and says on the model status topic whether the file on disk is usable.
    /// </summary>
    private void CheckModelFile()
    {
        try
        {
            string? replaced = Runtime.CheckModelFile();
            if (replaced is not null)
            {
                _logger.LogWarning("Model file changed: {Message}", replaced);
            }
            _ = _status!.PublishModelStatusAsync(replaced is null ? "ready" : "replaced", replaced);
        }
        catch (Exception e) when (e is GgufFormatException or IOException or UnauthorizedAccessException)
        {
            _logger.LogError("Model file {Path} is not usable, keeping the model in use (a restart now would fail): {Reason}", Runtime.ModelFile, e.Message);
            _ = _status!.PublishModelStatusAsync("error", e.Message);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (IDisposable watcher in _watchers) watcher.Dispose();
        if (_wyoming is not null) await _wyoming.DisposeAsync();
        _stopping.Cancel();
        _worker?.Complete();
        try
        {
            await Task.WhenAll(_workerLoop, _connectionLoop).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }
        if (_connection is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            await _connection.StopAsync(timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_wyoming is not null) await _wyoming.DisposeAsync();
        if (_connection is not null) await _connection.DisposeAsync();
        if (_broker is not null) await _broker.DisposeAsync();
        _azure?.Dispose();
        _runtime?.Dispose();
        _stopping.Dispose();
    }
}
