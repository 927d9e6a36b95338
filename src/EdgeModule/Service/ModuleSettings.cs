using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Configuration;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Telemetry;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// Every setting of <c>edgeslm run</c>, bound from (later wins) the JSON file, <c>EDGESLM__Section__Key</c>
/// environment variables and the command line. <see cref="Validate"/> runs at start-up and names the setting.
/// </summary>
public sealed class ModuleSettings
{
    /// <summary>This device's id: a topic level (<c>edgeslm/&lt;SiteId&gt;/...</c>) and Hermes' default siteId.</summary>
    public string SiteId { get; set; } = "default";

    /// <summary>GGUF model file; empty: the bundled MiniLM, converted to q4_0 once into the cache.</summary>
    public string? Model { get; set; }

    /// <summary>Intents file or folder (hassil YAML, or JSONL examples); empty: the sample home intents built in.</summary>
    public string? Intents { get; set; }

    /// <summary>Comma-separated protocol profiles: hermes, native, wyoming (alone: no MQTT at all); azure (the only one) when the Azure section is configured.</summary>
    public string Profiles { get; set; } = "hermes,native";

    /// <summary>Inference threads (the thermal governor may lower them while the CPU is hot).</summary>
    public int Threads { get; set; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>
    /// Threads of every encoder pass, 1 to <see cref="Threads"/>; empty: measured at start per input length (one
    /// thread where splitting a short utterance does not pay), see <c>model/status</c> and the log.
    /// </summary>
    public int? EncoderThreads { get; set; }

    /// <summary>Fixed "not recognized" confidence (0..1); empty: calibrated on held-out examples when training.</summary>
    public double? Threshold { get; set; }

    /// <summary>Largest accepted payload; bigger messages are answered on the error topic.</summary>
    public int MaxPayloadBytes { get; set; } = 8 * 1024;

    /// <summary>Messages waiting for inference; when full, reading from the broker pauses (nothing is dropped).</summary>
    public int QueueCapacity { get; set; } = 256;

    /// <summary>Utterances classified together when a backlog forms.</summary>
    public int MaxBatch { get; set; } = 16;

    /// <summary>
    /// Tokens read per utterance ([CLS] and [SEP] included), at most the model's context; a longer utterance is
    /// classified on its start and its answer says <c>truncated</c>. Bounds the time and memory of one utterance.
    /// </summary>
    public int MaxTokens { get; set; } = 128;

    /// <summary>Intents one definition (file, folder or intents/set message) may define; more is refused.</summary>
    public int MaxIntents { get; set; } = 1000;

    /// <summary>Training sentences one definition may give, counting each template's expansions; more is refused.</summary>
    public int MaxExamples { get; set; } = 50_000;

    /// <summary>Distinct sentences drawn from each template: bounds what lists and alternatives expand to.</summary>
    public int ExamplesPerTemplate { get; set; } = 20;

    /// <summary>Where converted models and trained heads are kept; empty: EDGESLM_CACHE, XDG cache, ~/.cache/edgeslm.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>The generative language model behind (or instead of) the classifier.</summary>
    public SlmSettings Slm { get; set; } = new();

    public MqttSettings Mqtt { get; set; } = new();
    public HermesSettings Hermes { get; set; } = new();
    public HomeAssistantSettings HomeAssistant { get; set; } = new();
    public TelemetrySettings Telemetry { get; set; } = new();

    /// <summary>IoT Hub / IoT Edge: when configured, the module connects there instead of <c>Mqtt:Broker</c>.</summary>
    public AzureSettings Azure { get; set; } = new();

    /// <summary>What the runtime loads and how it trains.</summary>
    public RuntimeSettings Runtime() => new(Model, Intents, Threads, MaxTokens, CacheDirectory,
        new IntentEngineSettings(Threshold: Threshold, ExamplesPerTemplate: ExamplesPerTemplate, MaxIntents: MaxIntents, MaxExamples: MaxExamples),
        EncoderThreads, Slm);

    /// <summary>What the Azure module needs, when the <c>Azure</c> section is configured.</summary>
    public AzureModuleSettings AzureModule() => new(Azure, Mqtt, SiteId, Threshold, Intents);
    /// <summary>The Wyoming intent service (profile wyoming): port and limits.</summary>
    public WyomingSettings Wyoming { get; set; } = new();

    public ProtocolProfile ParsedProfiles()
    {
        var profiles = ProtocolProfile.None;
        foreach (string name in Profiles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            profiles |= name.ToLowerInvariant() switch
            {
                "hermes" => ProtocolProfile.Hermes,
                "native" => ProtocolProfile.Native,
                "azure" => ProtocolProfile.Azure,
                "wyoming" => ProtocolProfile.Wyoming,
                _ => throw new SettingsException($"Profiles: unknown profile '{name}' (hermes, native, wyoming, azure)"),
            };
        }
        return profiles;
    }

    /// <summary>Every problem, each naming its setting; empty when the settings can be used.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (!TopicLevel.IsValid(SiteId))
        {
            errors.Add($"SiteId: '{SiteId}' cannot be an MQTT topic level (1 to 64 characters, no '/', '+', '#', '$' at the start, or control characters)");
        }
        try
        {
            if (ParsedProfiles() == ProtocolProfile.None) errors.Add("Profiles: at least one of hermes, native, wyoming");
        }
        catch (SettingsException e)
        {
            errors.Add(e.Message);
        }
        if (Threads is < 1 or > 64) errors.Add($"Threads: {Threads} is not between 1 and 64");
        if (EncoderThreads is int encoderThreads && (encoderThreads < 1 || encoderThreads > Threads))
        {
            errors.Add($"EncoderThreads: {encoderThreads} is not between 1 and Threads ({Threads})");
        }
        if (Threshold is < 0 or > 1) errors.Add($"Threshold: {Threshold} is not between 0 and 1");
        if (MaxPayloadBytes is < 16 or > 1024 * 1024) errors.Add($"MaxPayloadBytes: {MaxPayloadBytes} is not between 16 and 1048576");
        if (QueueCapacity is < 1 or > 100_000) errors.Add($"QueueCapacity: {QueueCapacity} is not between 1 and 100000");
        if (MaxBatch is < 1 or > 64) errors.Add($"MaxBatch: {MaxBatch} is not between 1 and 64");
        if (MaxTokens is < 8 or > 65536) errors.Add($"MaxTokens: {MaxTokens} is not between 8 and 65536 (and the model's context)");
        if (MaxIntents is < 1 or > 100_000) errors.Add($"MaxIntents: {MaxIntents} is not between 1 and 100000");
        if (MaxExamples is < 1 or > 10_000_000) errors.Add($"MaxExamples: {MaxExamples} is not between 1 and 10000000");
        if (ExamplesPerTemplate is < 1 or > 10_000) errors.Add($"ExamplesPerTemplate: {ExamplesPerTemplate} is not between 1 and 10000");
        if (!string.IsNullOrWhiteSpace(Model) && !File.Exists(Model)) errors.Add($"Model: file {Model} does not exist");
        if (!string.IsNullOrWhiteSpace(Intents) && !File.Exists(Intents) && !Directory.Exists(Intents)) errors.Add($"Intents: {Intents} does not exist");
        errors.AddRange(Slm.Validate());
        errors.AddRange(Mqtt.Validate());
        if (string.IsNullOrWhiteSpace(Hermes.ErrorTopic) || Hermes.ErrorTopic.Contains('+') || Hermes.ErrorTopic.Contains('#'))
        {
            errors.Add($"Hermes:ErrorTopic: '{Hermes.ErrorTopic}' is not a topic to publish on");
        }
        errors.AddRange(Telemetry.Validate());
        errors.AddRange(Azure.Validate());
        errors.AddRange(Wyoming.Validate());
        if (Profiles.Contains("azure", StringComparison.OrdinalIgnoreCase) && !Azure.IsConfigured)
        {
            errors.Add("Profiles: azure needs Azure:ConnectionString or the IoT Edge environment (IOTEDGE_WORKLOADURI)");
        }
        if (!TopicLevel.IsValid(HomeAssistant.DiscoveryPrefix)) errors.Add($"HomeAssistant:DiscoveryPrefix: '{HomeAssistant.DiscoveryPrefix}' is not a topic level");
        return errors;
    }
}
