using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Hosting;
using EdgeSlm.EdgeModule.Intents;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Telemetry;
using EdgeSlm.EdgeModule.Wyoming;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Module;

/// <summary>
/// The module: transcripts in over MQTT, intents out. Received messages go through a bounded queue to one
/// inference worker, which classifies whatever has queued up in one batch (the GEMM path), publishes the answers,
/// and only then acknowledges the messages, in the order they came.
/// </summary>
public sealed class IntentService : IHostedService, IAsyncDisposable
{
    private readonly ModuleSettings _settings;
    private readonly ILogger<IntentService> _logger;
    private readonly ModuleCounters _counters;
    private readonly Channel<ReceivedMessage> _queue;
    private readonly ProtocolProfile _profiles;
    private readonly HermesProtocol _hermes;
    private readonly NativeProtocol _native;
    private readonly string _intentsSetTopic, _intentsStatusTopic, _modelStatusTopic;
    private readonly CancellationTokenSource _stopping = new();
    private IntentRuntime? _runtime;
    private EmbeddedBroker? _broker;
    private AzureModule? _azure;
    private MqttConnection? _connection;
    private Task _connectionLoop = Task.CompletedTask, _workerLoop = Task.CompletedTask;
    private readonly List<IDisposable> _watchers = [];
    private WyomingServer? _wyoming;
    // Runtime.Features (the encoder's buffers) serves one caller at a time: the MQTT worker and Wyoming's connections take turns.
    private readonly Lock _inference = new();

    public IntentService(ModuleSettings settings, ModuleCounters counters, ILogger<IntentService> logger)
    {
        _settings = settings;
        _counters = counters;
        _logger = logger;
        // IoT Hub and edgeHub take no topics but their own: with Azure configured, the module speaks only that.
        _profiles = settings.Azure.IsConfigured ? ProtocolProfile.Azure : settings.ParsedProfiles();
        _hermes = new HermesProtocol(settings.Hermes.ErrorTopic);
        _native = new NativeProtocol(settings.SiteId);
        _intentsSetTopic = $"edgeslm/{settings.SiteId}/intents/set";
        _intentsStatusTopic = $"edgeslm/{settings.SiteId}/intents/status";
        _modelStatusTopic = $"edgeslm/{settings.SiteId}/model/status";
        // Full queue: the receive handler waits, MQTTnet stops reading, the broker holds the rest. Nothing is dropped.
        _queue = Channel.CreateBounded<ReceivedMessage>(new BoundedChannelOptions(settings.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>True while the connection loop and the inference worker run (what the systemd watchdog checks).</summary>
    public bool IsHealthy => _runtime is not null && !_connectionLoop.IsCompleted && !_workerLoop.IsCompleted;

    /// <summary>Port of the embedded broker, when there is one.</summary>
    public int? EmbeddedBrokerPort => _broker?.Port;

    /// <summary>Publishes a message of the module's own (telemetry); waits out disconnections.</summary>
    public Task PublishAsync(OutgoingMessage message, CancellationToken cancellation) =>
        _connection is null ? Task.CompletedTask : _connection.PublishAsync(_azure?.Telemetry(message) ?? message, cancellation);

    public IntentRuntime Runtime => _runtime ?? throw new InvalidOperationException("not started");

    /// <summary>Loads the model and trains before the host reports ready; a failure here stops the start.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _runtime = IntentRuntime.Start(_settings, _logger);
        if (_profiles.HasFlag(ProtocolProfile.Wyoming))
        {
            StartWyoming();
        }
        if (_profiles == ProtocolProfile.Wyoming)
        {
            // Wyoming alone needs no broker: no MQTT connection, and status goes to the log. There is nothing to
            // connect to, so Connected completes now: telemetry's thermal governor runs (its publishes go nowhere).
            _connectionLoop = _workerLoop = _wyoming!.Running;
            _firstConnection.TrySetResult();
            WatchIntentsFile();
            WatchModelFile();
            _logger.LogInformation("EdgeSlm running: profile wyoming only (no MQTT), {Threads} threads", _settings.Threads);
            return;
        }
        if (_profiles == ProtocolProfile.Azure)
        {
            _azure = new AzureModule(_settings, IotHubConnector.Create(_settings.Azure, _settings.Mqtt, _logger), () => Runtime, _logger, _stopping.Token);
            _connection = _azure.CreateConnection(OnMessageAsync);
            _connection.Connected += OnConnectedAsync;
            _connectionLoop = Task.WhenAll(Task.Run(() => _connection.RunAsync(_stopping.Token)), Task.Run(() => _azure.RunAsync(_stopping.Token)));
            _workerLoop = Task.Run(() => WorkAsync(_stopping.Token));
            WatchIntentsFile();
            _logger.LogInformation("EdgeSlm running: site {Site}, Azure IoT {Endpoint}, {Threads} threads", _settings.SiteId, _azure.Endpoint, _settings.Threads);
            return;
        }
        BrokerAddress address = BrokerAddress.Parse(_settings.Mqtt.Broker);
        if (address.Embedded)
        {
            _broker = await EmbeddedBroker.StartAsync(_settings.Mqtt.EmbeddedPort);
            address = address with { Port = _broker.Port };
            _logger.LogInformation("Embedded MQTT broker listening on port {Port}", _broker.Port);
        }
        _connection = new MqttConnection(_settings.Mqtt, address, ClientId(), $"edgeslm/{_settings.SiteId}/status",
            Subscriptions(), OnMessageAsync, _logger);
        _connection.Connected += OnConnectedAsync;
        _connectionLoop = Task.Run(() => _connection.RunAsync(_stopping.Token));
        _workerLoop = Task.Run(() => WorkAsync(_stopping.Token));
        WatchIntentsFile();
        WatchModelFile();
        _logger.LogInformation("EdgeSlm running: site {Site}, profiles {Profiles}, broker {Broker}, {Threads} threads",
            _settings.SiteId, _settings.Profiles, address.Embedded ? $"embedded:{address.Port}" : $"{address.Host}:{address.Port}{(address.Tls ? " (TLS)" : "")}", _settings.Threads);
    }

    private void StartWyoming()
    {
        var handler = new WyomingIntentHandler(ClassifyOneAsync, () => _runtime?.Engine, HomeAssistantIntents.ForIntents(_settings.Intents),
            _settings.Wyoming, _logger, _counters.Inference);
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

    /// <summary>Port of the Wyoming intent service, when the wyoming profile is on.</summary>
    public int? WyomingPort => _wyoming?.Port;

    private Task<IntentResult> ClassifyOneAsync(string text, CancellationToken cancellation) => Task.Run(() =>
    {
        lock (_inference)
        {
            return Runtime.Engine.Classify(Runtime.Features, [text])[0];
        }
    }, cancellation);

    private string ClientId() => string.IsNullOrWhiteSpace(_settings.Mqtt.ClientId) ? $"edgeslm-{_settings.SiteId}" : _settings.Mqtt.ClientId;

    private List<string> Subscriptions()
    {
        string share = string.IsNullOrWhiteSpace(_settings.Mqtt.SharedGroup) ? "" : $"$share/{_settings.Mqtt.SharedGroup}/";
        var filters = new List<string>();
        if (_profiles.HasFlag(ProtocolProfile.Hermes)) filters.Add(share + HermesProtocol.QueryTopic);
        if (_profiles.HasFlag(ProtocolProfile.Native)) filters.Add(share + _native.TranscriptTopic);
        filters.Add(_intentsSetTopic);
        return filters;
    }

    private readonly TaskCompletionSource _firstConnection = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _modelStatusPublished;

    /// <summary>Completes once the module is connected and subscribed for the first time.</summary>
    public Task Connected => _firstConnection.Task;

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
            await PublishModelStatusAsync("ready", Runtime.ModelWarning);
        }
        if (_settings.HomeAssistant.Discovery)
        {
            await PublishDiscoveryAsync(Runtime.Engine);
        }
    }

    private async Task OnMessageAsync(ReceivedMessage message)
    {
        if (_azure is not null && _azure.IsControl(message.Message.Topic))
        {
            _azure.HandleControl(message);
            await _connection!.AcknowledgeAsync(message, _stopping.Token);
            return;
        }
        if (message.Message.Topic == _intentsSetTopic)
        {
            HandleIntentsSet(message);
            await _connection!.AcknowledgeAsync(message, _stopping.Token);
            return;
        }
        _counters.Inference.SetQueueDepth(_queue.Reader.Count + 1);
        // Wait for room, but never on a dead connection: MQTTnet reports a lost broker only after this handler
        // returns, and the worker cannot free room while it waits to publish on the next connection (a deadlock
        // that FaultTests found). A message given up here is not acknowledged, so the broker delivers it again.
        while (!_queue.Writer.TryWrite(message))
        {
            if (_stopping.IsCancellationRequested || message.Connection != _connection!.Connection || !_connection.IsConnected)
            {
                Interlocked.Increment(ref _counters.StaleSkipped);
                return;
            }
            using var poll = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            poll.CancelAfter(TimeSpan.FromMilliseconds(100));
            try
            {
                await _queue.Writer.WaitToWriteAsync(poll.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task WorkAsync(CancellationToken stopping)
    {
        var batch = new List<ReceivedMessage>(_settings.MaxBatch);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stopping))
            {
                batch.Clear();
                while (batch.Count < _settings.MaxBatch && _queue.Reader.TryRead(out ReceivedMessage? item))
                {
                    batch.Add(item);
                }
                _counters.Inference.SetQueueDepth(_queue.Reader.Count);
                try
                {
                    await ProcessAsync(batch, stopping);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    // A bug must not stop the module: the batch stays unacknowledged and comes back after a reconnect.
                    Interlocked.Increment(ref _counters.Failures);
                    _logger.LogError(e, "Batch of {Count} failed", batch.Count);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ProcessAsync(List<ReceivedMessage> batch, CancellationToken stopping)
    {
        MqttConnection connection = _connection!;
        var requests = new List<(ReceivedMessage Message, TranscriptRequest Request)>();
        var parsed = new object[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            ReceivedMessage message = batch[i];
            if (message.Connection != connection.Connection)
            {
                // Received on a connection that has since dropped: the broker redelivers it on the new one.
                parsed[i] = null!;
                Interlocked.Increment(ref _counters.StaleSkipped);
                continue;
            }
            parsed[i] = Parse(message);
            if (parsed[i] is TranscriptRequest request)
            {
                requests.Add((message, request));
            }
        }

        long start = Stopwatch.GetTimestamp();
        IntentResult[] results = [];
        if (requests.Count > 0)
        {
            lock (_inference)
            {
                results = Runtime.Engine.Classify(Runtime.Features, requests.Select(r => r.Request.Text).ToArray(), requests.Select(r => r.Request.IntentFilter).ToArray());
            }
        }
        double perUtterance = requests.Count == 0 ? 0 : Stopwatch.GetElapsedTime(start).TotalMilliseconds / requests.Count;

        int next = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            switch (parsed[i])
            {
                case TranscriptRequest request:
                    IntentResult result = results[next++];
                    double elapsed = Stopwatch.GetElapsedTime(batch[i].ReceivedTimestamp).TotalMilliseconds;
                    foreach (OutgoingMessage outgoing in Answers(request, result, elapsed))
                    {
                        await connection.PublishAsync(outgoing, stopping);
                    }
                    _counters.Inference.RecordCompleted(TimeSpan.FromMilliseconds(perUtterance));
                    if (batch[i].Message.Dup) Interlocked.Increment(ref _counters.Redelivered);
                    break;
                case RequestError error:
                    _counters.Inference.RecordFailed();
                    _logger.LogWarning("Rejected a message on {Topic} (id {Id}): {Reason}", batch[i].Message.Topic, error.Id, error.Reason);
                    await connection.PublishAsync(error.Profile switch
                    {
                        ProtocolProfile.Hermes => _hermes.Error(error),
                        ProtocolProfile.Azure => _azure!.Error(error),
                        _ => _native.Error(error),
                    }, stopping);
                    break;
                default:
                    continue;
            }
            await connection.AcknowledgeAsync(batch[i], stopping);
        }
    }

    private object Parse(ReceivedMessage message)
    {
        var m = message.Message;
        if (_azure is not null)
        {
            return _azure.Parse(message);
        }
        if (m.Topic == HermesProtocol.QueryTopic && _profiles.HasFlag(ProtocolProfile.Hermes))
        {
            return _hermes.Parse(m.Topic, m.Payload, _settings.MaxPayloadBytes);
        }
        if (m.Topic == _native.TranscriptTopic && _profiles.HasFlag(ProtocolProfile.Native))
        {
            return _native.Parse(m.Topic, m.Payload, _settings.MaxPayloadBytes, m.ResponseTopic, m.CorrelationData);
        }
        return new RequestError(ProtocolProfile.Native, PayloadReader.DerivedId(m.Topic, m.Payload), $"no protocol reads topic {m.Topic}", _settings.SiteId);
    }

    private IEnumerable<OutgoingMessage> Answers(TranscriptRequest request, IntentResult result, double elapsed)
    {
        if (request.Profile == ProtocolProfile.Azure)
        {
            yield return _azure!.Result(request, result, elapsed);
            yield break;
        }
        if (request.Profile == ProtocolProfile.Hermes)
        {
            foreach (OutgoingMessage message in _hermes.Results(request, result)) yield return message;
        }
        else
        {
            yield return _native.Result(request, result, elapsed);
        }
        if (_settings.HomeAssistant.Discovery)
        {
            yield return HomeAssistantDiscovery.Event(_settings.SiteId, result);
        }
    }

    private Task PublishDiscoveryAsync(IntentEngine engine) =>
        _connection!.PublishAsync(HomeAssistantDiscovery.Config(_settings.HomeAssistant.DiscoveryPrefix, _settings.SiteId, engine.IntentNames), _stopping.Token);

    private void HandleIntentsSet(ReceivedMessage message)
    {
        if (!PayloadReader.TryReadText(message.Message.Payload, 4 * 1024 * 1024, out string yaml, out string reason))
        {
            _ = PublishStatusAsync("error", reason, null);
            return;
        }
        if (yaml.Length == 0)
        {
            return; // a cleared retained message
        }
        IntentDefinitions definitions;
        try
        {
            definitions = IntentDefinitions.FromYaml(yaml, _intentsSetTopic);
        }
        catch (Exception e) when (e is Intents.Templates.IntentFileException or Intents.Templates.TemplateFormatException)
        {
            _logger.LogWarning("Intents on {Topic} rejected: {Reason}", _intentsSetTopic, e.Message);
            _ = PublishStatusAsync("error", e.Message, null);
            return;
        }
        if (definitions.ContentHash == Runtime.Engine.Definitions.ContentHash)
        {
            return; // the retained message again after a reconnect: already in use
        }
        _ = RetrainAsync(definitions);
    }

    private void WatchIntentsFile()
    {
        string? path = _settings.Intents;
        if (!string.IsNullOrWhiteSpace(path) && File.Exists(path))
        {
            Watch(Path.GetFullPath(path), ReloadIntentsFile);
        }
    }

    private void WatchModelFile()
    {
        if (Runtime.ModelFile is string path)
        {
            Watch(path, _ => CheckModelFile());
        }
    }

    /// <summary>Calls <paramref name="changed"/> once a file has been written, replaced or renamed into place and has settled.</summary>
    private void Watch(string path, Action<string> changed)
    {
        var watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName | NotifyFilters.CreationTime,
        };
        // Editors and copies write in several steps: wait for the file to settle before reading it.
        var debounce = new Timer(_ => changed(path), null, Timeout.Infinite, Timeout.Infinite);
        FileSystemEventHandler onChange = (_, _) => debounce.Change(500, Timeout.Infinite);
        watcher.Changed += onChange;
        watcher.Created += onChange;
        watcher.Deleted += onChange;
        watcher.Renamed += (_, _) => debounce.Change(500, Timeout.Infinite);
        watcher.EnableRaisingEvents = true;
        _watchers.Add(watcher);
        _watchers.Add(debounce);
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
            _ = PublishModelStatusAsync(replaced is null ? "ready" : "replaced", replaced);
        }
        catch (Exception e) when (e is Gguf.GgufFormatException or IOException or UnauthorizedAccessException)
        {
            _logger.LogError("Model file {Path} is not usable, keeping the model in use (a restart now would fail): {Reason}", Runtime.ModelFile, e.Message);
            _ = PublishModelStatusAsync("error", e.Message);
        }
    }

    private async Task PublishModelStatusAsync(string status, string? message)
    {
        if (_azure is not null || _connection is null)
        {
            // IoT Hub closes a connection that publishes outside its topics: the log carries it there.
            _logger.LogInformation("Model status {Status}{Message}", status, message is null ? "" : ": " + message);
            return;
        }
        byte[] payload = JsonFields.Object(w =>
        {
            w.WriteString("status", status);
            w.WriteString("model", Runtime.ModelDescription);
            if (Runtime.ModelFile is not null) w.WriteString("file", Runtime.ModelFile);
            if (Runtime.ModelWarning is not null) w.WriteBoolean("convertedInMemory", true);
            if (message is not null) w.WriteString(status == "error" ? "error" : "message", message);
            w.WriteString("time", DateTimeOffset.UtcNow.ToString("O"));
        });
        try
        {
            await _connection!.PublishAsync(new OutgoingMessage(_modelStatusTopic, payload, Retain: true), _stopping.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void ReloadIntentsFile(string path)
    {
        IntentDefinitions definitions;
        try
        {
            definitions = IntentDefinitions.Load(path);
        }
        catch (Exception e) when (e is Intents.Templates.IntentFileException or Intents.Templates.TemplateFormatException or IOException)
        {
            _logger.LogWarning("Intents file {Path} not reloaded, keeping the intents in use: {Reason}", path, e.Message);
            _ = PublishStatusAsync("error", e.Message, null);
            return;
        }
        if (definitions.ContentHash != Runtime.Engine.Definitions.ContentHash)
        {
            _ = RetrainAsync(definitions);
        }
    }

    private async Task RetrainAsync(IntentDefinitions definitions)
    {
        try
        {
            await PublishStatusAsync("training", null, null);
            IntentEngine engine = await Runtime.RetrainAsync(definitions, _stopping.Token);
            await PublishStatusAsync("ready", null, engine);
            if (_settings.HomeAssistant.Discovery && _azure is null && _connection is not null)
            {
                await PublishDiscoveryAsync(engine);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _logger.LogWarning("Retraining failed, keeping the intents in use: {Reason}", e.Message);
            await PublishStatusAsync("error", e.Message, null);
        }
    }

    private async Task PublishStatusAsync(string status, string? error, IntentEngine? engine)
    {
        if (_azure is not null)
        {
            await _azure.ReportTrainingAsync(status, error, engine);
            return;
        }
        if (_connection is null)
        {
            return; // Wyoming alone: the log says it
        }
        byte[] payload = JsonFields.Object(w => ResultJson.WriteTrainingStatus(w, status, error, engine, namesAsOneString: false));
        try
        {
            await _connection!.PublishAsync(new OutgoingMessage(_intentsStatusTopic, payload, Retain: true), _stopping.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (IDisposable watcher in _watchers) watcher.Dispose();
        if (_wyoming is not null) await _wyoming.DisposeAsync();
        _stopping.Cancel();
        _queue.Writer.TryComplete();
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

/// <summary>What the module has done since it started: for logs, telemetry and tests.</summary>
public sealed class ModuleCounters
{
    /// <summary>Answers, rejected messages, latency percentiles and queue depth (what telemetry publishes).</summary>
    public InferenceStatistics Inference { get; } = new();

    /// <summary>Batches that failed for a reason other than their input (a bug): left unacknowledged.</summary>
    public long Failures;

    /// <summary>Messages the broker marked as redelivered (DUP).</summary>
    public long Redelivered;

    /// <summary>Queued messages dropped because their connection had gone: the broker sends them again.</summary>
    public long StaleSkipped;
}
