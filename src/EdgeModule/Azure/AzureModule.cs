using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Kernels.Dispatch;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>What the Azure module needs of the module's settings.</summary>
/// <param name="Threshold">The configured "not recognized" threshold, which a null desired <c>threshold</c> returns to.</param>
/// <param name="Intents">The intents file that <c>reload</c> reads and a null desired <c>intents</c> returns to.</param>
public sealed record AzureModuleSettings(AzureSettings Azure, MqttSettings Mqtt, string SiteId, double? Threshold, string? Intents);

/// <summary>
/// The module as an Azure IoT Edge module (or IoT Hub device). Transcripts arrive on the input
/// <c>devices/{d}/modules/{m}/inputs/{InputName}/...</c> (the native protocol's JSON or plain text), and the native
/// protocol's result JSON leaves on the output <see cref="AzureSettings.OutputName"/>; errors on
/// <see cref="AzureSettings.ErrorOutputName"/>. The module twin's desired properties <c>threshold</c> (number, or
/// null for calibrated) and <c>intents</c> (hassil YAML) retrain the engine at run time; reported properties carry
/// the model, kernel path, version and the last training. Direct methods: <c>classify</c> (a JSON string or
/// <c>{"text"}</c>, answered with the result JSON) and <c>reload</c> (the intents file again).
/// </summary>
public sealed class AzureModule : IDisposable
{
    /// <summary>Twin keys must not hold '.', '$' or spaces; these are the ones this module reads.</summary>
    public const string ThresholdProperty = "threshold", IntentsProperty = "intents";

    private readonly AzureModuleSettings _settings;
    private readonly IotHubConnector _connector;
    private readonly Func<IntentRuntime> _runtime;
    private readonly ILogger _logger;
    private readonly string _telemetryTopic;
    private readonly SemaphoreSlim _applying = new(1, 1);
    private readonly Lock _desiredLock = new();
    private readonly CancellationToken _stopping;
    private MqttConnection? _connection;
    private long _rid;
    private string? _twinGetRid;
    // What the twin asked for and what is in use: retraining happens only when they differ.
    private DesiredState _desired, _applied;
    private long _desiredVersion = -1;

    public AzureModule(AzureModuleSettings settings, IotHubConnector connector, Func<IntentRuntime> runtime, ILogger logger, CancellationToken stopping)
    {
        _settings = settings;
        _connector = connector;
        _runtime = runtime;
        _logger = logger;
        _stopping = stopping;
        Protocol = new AzureProtocol(settings.Azure, settings.SiteId, connector.Topics);
        _telemetryTopic = Topics.OutputTopic(settings.Azure.TelemetryOutputName);
        _desired = _applied = new DesiredState(settings.Threshold, null);
    }

    public IotHubTopics Topics => _connector.Topics;

    /// <summary>How transcripts arrive (the input, the <c>classify</c> method) and answers leave (the outputs).</summary>
    public AzureProtocol Protocol { get; }

    public string Endpoint => $"{_connector.Host}:{_connector.Port}{(_settings.Azure.Tls ? " (TLS)" : "")} as {Topics.ClientId}";

    private IntentRuntime Runtime => _runtime();

    /// <summary>The one connection: its options (and token) are built at each (re)connection.</summary>
    public MqttConnection CreateConnection(Func<ReceivedMessage, Task> onMessage)
    {
        string[] subscriptions = [Topics.InputFilter, IotHubTopics.TwinResponseFilter, IotHubTopics.DesiredPatchFilter, IotHubTopics.MethodFilter];
        _connection = new MqttConnection(_settings.Mqtt, _connector.BuildOptionsAsync, null, subscriptions, onMessage, _logger);
        return _connection;
    }

    /// <summary>Renews the SAS token until stopped.</summary>
    public Task RunAsync(CancellationToken stopping) => _connector.RenewTokensAsync(_connection!, stopping);

    private string NextRid() => Interlocked.Increment(ref _rid).ToString(CultureInfo.InvariantCulture);

    /// <summary>After every connection: ask for the whole twin (patches missed while away are in it).</summary>
    public async Task OnConnectedAsync()
    {
        string rid = NextRid();
        Volatile.Write(ref _twinGetRid, rid);
        await _connection!.PublishAsync(new OutgoingMessage(IotHubTopics.TwinGet(rid), [], ContentType: null), _stopping);
    }

    /// <summary>Twin responses, desired property patches and methods other than classify: handled here, not queued.</summary>
    public bool IsControl(string topic) =>
        topic.StartsWith("$iothub/twin/", StringComparison.Ordinal)
        || (IotHubTopics.MethodName(topic) is { } method && method != "classify");

    public void HandleControl(ReceivedMessage message)
    {
        string topic = message.Message.Topic;
        ReadOnlySequence<byte> payload = message.Message.Payload;
        if (IotHubTopics.TwinResponseStatus(topic) is int status)
        {
            string? rid = IotHubTopics.QueryValue(topic, "$rid");
            if (rid is not null && rid == Volatile.Read(ref _twinGetRid))
            {
                if (status == 200) OnDesired(payload, whole: true);
                else _logger.LogWarning("The hub answered the twin request with status {Status}", status);
            }
            else if (status >= 300)
            {
                _logger.LogWarning("The hub refused a reported properties update (status {Status})", status);
            }
            return;
        }
        if (topic.StartsWith(IotHubTopics.DesiredPatchPrefix, StringComparison.Ordinal))
        {
            OnDesired(payload, whole: false);
            return;
        }
        if (IotHubTopics.MethodName(topic) is { } method)
        {
            string rid = IotHubTopics.QueryValue(topic, "$rid") ?? "";
            _ = method == "reload"
                ? ReloadAsync(rid)
                : RespondAsync(404, rid, JsonFields.Object(w => w.WriteString("error", $"unknown method '{method}' (classify, reload)")));
        }
    }

    /// <summary>The module's own messages (telemetry) go out on the telemetry output: the hub accepts no other topics.</summary>
    public OutgoingMessage Telemetry(OutgoingMessage message) => message with { Topic = _telemetryTopic, Retain = false };

    private Task RespondAsync(int status, string rid, byte[] payload) =>
        _connection!.PublishAsync(new OutgoingMessage(IotHubTopics.MethodResponse(status, rid), payload), _stopping);

    private void OnDesired(ReadOnlySequence<byte> payload, bool whole)
    {
        DesiredState desired;
        long version;
        try
        {
            lock (_desiredLock)
            {
                DesiredState start = whole ? new DesiredState(_settings.Threshold, null) : _desired;
                (desired, version) = AzurePayloads.Desired(payload, whole, start, _settings.Threshold);
                if (!whole && version >= 0 && version <= _desiredVersion)
                {
                    return; // already in the twin we read
                }
                _desired = desired;
                _desiredVersion = version;
            }
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            _logger.LogWarning("Desired properties not applied: {Reason}", e.Message);
            _ = ReportAsync(w => WriteTraining(w, "error", $"desired properties: {e.Message}", null));
            return;
        }
        _ = ApplyAsync(desired, version, whole);
    }

    private async Task ApplyAsync(DesiredState desired, long version, bool report)
    {
        try
        {
            await _applying.WaitAsync(_stopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        try
        {
            if (desired == _applied)
            {
                if (report) await ReportAsync(w => WriteTraining(w, "ready", null, Runtime.Engine));
                return;
            }
            IntentDefinitions definitions = desired.IntentsYaml is null
                ? IntentRuntime.LoadDefinitions(_settings.Intents)
                : IntentDefinitions.FromYaml(desired.IntentsYaml, "twin desired property 'intents'");
            _logger.LogInformation("Desired properties (version {Version}): retraining with threshold {Threshold}", version,
                desired.Threshold is double t ? t.ToString("0.###", CultureInfo.InvariantCulture) : "calibrated");
            IntentEngine engine = await Runtime.RetrainAsync(definitions, Runtime.EngineSettings with { Threshold = desired.Threshold }, _stopping);
            _applied = desired;
            await ReportAsync(w => WriteTraining(w, "ready", null, engine));
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _logger.LogWarning("Desired properties not applied, keeping the intents in use: {Reason}", e.Message);
            await ReportAsync(w => WriteTraining(w, "error", e.Message, null));
        }
        finally
        {
            _applying.Release();
        }
    }

    private async Task ReloadAsync(string rid)
    {
        try
        {
            await _applying.WaitAsync(_stopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        try
        {
            IntentDefinitions definitions = IntentRuntime.LoadDefinitions(_settings.Intents);
            IntentEngine engine = await Runtime.RetrainAsync(definitions, null, _stopping);
            _applied = _applied with { IntentsYaml = null };
            await ReportAsync(w => WriteTraining(w, "ready", null, engine));
            await RespondAsync(200, rid, JsonFields.Object(w => ResultJson.WriteTrainingStatus(w, "ready", null, engine, namesAsOneString: true)));
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _logger.LogWarning("Reload failed, keeping the intents in use: {Reason}", e.Message);
            await ReportAsync(w => WriteTraining(w, "error", e.Message, null));
            await RespondAsync(500, rid, JsonFields.Object(w => ResultJson.WriteTrainingStatus(w, "error", e.Message, null, namesAsOneString: true)));
        }
        finally
        {
            _applying.Release();
        }
    }

    /// <summary>Training outside the twin's doing (the intents file changed): reported the same way. "training" is not reported.</summary>
    public Task ReportTrainingAsync(string status, string? error, IntentEngine? engine) =>
        status == "training" ? Task.CompletedTask : ReportAsync(w => WriteTraining(w, status, error, engine));

    /// <summary>Patches the reported properties: what runs here, and <paramref name="fields"/>.</summary>
    private async Task ReportAsync(Action<Utf8JsonWriter> fields)
    {
        IntentRuntime runtime = Runtime;
        byte[] patch = JsonFields.Object(w =>
        {
            w.WriteString("model", runtime.ModelDescription);
            w.WriteString("kernelPath", KernelPaths.Name(KernelPaths.Default));
            w.WriteString("version", Version);
            w.WriteNumber("threshold", Math.Round(runtime.Engine.Threshold, 4));
            w.WriteNumber("desiredVersion", Interlocked.Read(ref _desiredVersion));
            fields(w);
        });
        try
        {
            await _connection!.PublishAsync(new OutgoingMessage(IotHubTopics.ReportedPatch(NextRid()), patch), _stopping);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void WriteTraining(Utf8JsonWriter writer, string status, string? error, IntentEngine? engine)
    {
        writer.WriteStartObject("lastTraining");
        ResultJson.WriteTrainingStatus(writer, status, error, engine, namesAsOneString: true);
        writer.WriteEndObject();
    }

    public static string Version { get; } =
        typeof(AzureModule).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public void Dispose()
    {
        _connector.Dispose();
        _applying.Dispose();
    }
}

/// <summary>The settings the twin controls: a fixed threshold (null: the configured one) and intents YAML (null: the intents file).</summary>
internal readonly record struct DesiredState(double? Threshold, string? IntentsYaml);

/// <summary>
/// Reading what IoT Hub sends: direct-method payloads and twin documents. Pure functions over the bytes, so the
/// fuzzer reaches them as the module does. Bad input is a <see cref="RequestError"/> (methods) or a
/// <see cref="JsonException"/>/<see cref="FormatException"/> (twin), never anything else.
/// </summary>
internal static class AzurePayloads
{
    /// <summary>A <c>classify</c> call: the payload is a JSON string (the transcript) or the native request object.</summary>
    public static ParsedMessage MethodRequest(string topic, ReadOnlySequence<byte> payload, int maxBytes, string siteId, NativeProtocol native, string ok, string bad)
    {
        if (PayloadReader.TryReadText(payload, maxBytes, out string text, out _) && text.TrimStart().StartsWith('"'))
        {
            string id = PayloadReader.DerivedId(topic, payload);
            try
            {
                using JsonDocument json = JsonDocument.Parse(text);
                string transcript = json.RootElement.ValueKind == JsonValueKind.String ? json.RootElement.GetString() ?? "" : "";
                return string.IsNullOrWhiteSpace(transcript)
                    ? new RequestError(ProtocolProfile.Azure, id, "empty transcript", siteId, ResponseTopic: bad)
                    : new TranscriptRequest(ProtocolProfile.Azure, id, transcript.Trim(), siteId, ResponseTopic: ok, IdGiven: false);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // InvalidOperationException: a string that is not valid UTF-16 once unescaped (a lone surrogate).
                return new RequestError(ProtocolProfile.Azure, id, $"invalid JSON: {e.Message}", siteId, ResponseTopic: bad);
            }
        }
        return AsAzure(native.Parse(topic, payload, maxBytes, ok, null), bad);
    }

    public static ParsedMessage AsAzure(ParsedMessage parsed, string? errorTopic) => parsed switch
    {
        TranscriptRequest request => request with { Profile = ProtocolProfile.Azure },
        RequestError error => error with { Profile = ProtocolProfile.Azure, ResponseTopic = errorTopic },
        _ => throw new UnreachableException(),
    };

    /// <summary>
    /// The desired state after a twin document (<paramref name="whole"/>: the GET response, with "desired" inside)
    /// or a desired-properties patch, and its <c>$version</c> (-1 when absent).
    /// </summary>
    /// <exception cref="JsonException">Not JSON.</exception>
    /// <exception cref="FormatException">A property of the wrong type or range; the message names it.</exception>
    public static (DesiredState State, long Version) Desired(ReadOnlySequence<byte> payload, bool whole, DesiredState start, double? configuredThreshold)
    {
        try
        {
            using JsonDocument json = JsonDocument.Parse(payload);
            JsonElement root = json.RootElement;
            if (whole)
            {
                root = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("desired", out JsonElement d) ? d : default;
            }
            long version = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("$version", out JsonElement v) && v.TryGetInt64(out long n) ? n : -1;
            return (Read(root, start, configuredThreshold), version);
        }
        catch (InvalidOperationException e)
        {
            // A lone surrogate in a string the reader unescapes.
            throw new FormatException($"not valid text: {e.Message}", e);
        }
    }

    /// <summary>The desired state after <paramref name="properties"/> (the whole desired document, or a patch: null removes).</summary>
    private static DesiredState Read(JsonElement properties, DesiredState start, double? configuredThreshold)
    {
        if (properties.ValueKind != JsonValueKind.Object)
        {
            return start;
        }
        DesiredState state = start;
        if (properties.TryGetProperty(AzureModule.ThresholdProperty, out JsonElement threshold))
        {
            state = state with
            {
                Threshold = threshold.ValueKind switch
                {
                    JsonValueKind.Null => configuredThreshold,
                    JsonValueKind.Number when threshold.TryGetDouble(out double t) && t is >= 0 and <= 1 => t,
                    _ => throw new FormatException($"\"{AzureModule.ThresholdProperty}\" must be a number between 0 and 1, or null"),
                },
            };
        }
        if (properties.TryGetProperty(AzureModule.IntentsProperty, out JsonElement intents))
        {
            state = state with
            {
                IntentsYaml = intents.ValueKind switch
                {
                    JsonValueKind.Null => null,
                    JsonValueKind.String => intents.GetString() is { Length: > 0 } yaml ? yaml : null,
                    _ => throw new FormatException($"\"{AzureModule.IntentsProperty}\" must be hassil YAML text, or null"),
                },
            };
        }
        return state;
    }
}
