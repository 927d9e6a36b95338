using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using EdgeSlm.EdgeModule.Telemetry;
using EdgeSlm.Intents.Recognition;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// Answers one Wyoming event as an intent service: <c>describe</c> with <c>info</c> (one <c>intent</c> program);
/// <c>transcript</c> (what Home Assistant sends) and <c>recognize</c> with <c>intent</c> or <c>not-recognized</c>,
/// echoing the request's <c>context</c>. Classification is a function handed in, so whoever runs inference (one
/// worker, a batch queue) stays outside; so is the engine, read only to describe the intents in <c>info</c>.
/// </summary>
public sealed class WyomingIntentHandler
{
    public const string CodeRequestInvalid = "request-invalid";
    public const string CodeClassificationFailed = "classification-failed";

    private static readonly string Version =
        typeof(WyomingIntentHandler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private readonly Func<string, CancellationToken, Task<IntentResult>> _classify;
    private readonly Func<IntentEngine?> _currentEngine;
    private readonly HomeAssistantIntents _homeAssistant;
    private readonly WyomingSettings _settings;
    private readonly InferenceStatistics? _statistics;
    private readonly ILogger _logger;

    /// <param name="classify">Classifies one utterance; may be called from many connections at once.</param>
    /// <param name="currentEngine">The engine in use (it changes on a hot reload), for <c>info</c>; null before one is trained.</param>
    /// <param name="statistics">Where answers and failures are counted (the module's telemetry); null: not counted.</param>
    public WyomingIntentHandler(Func<string, CancellationToken, Task<IntentResult>> classify, Func<IntentEngine?> currentEngine,
        HomeAssistantIntents homeAssistant, WyomingSettings settings, ILogger logger, InferenceStatistics? statistics = null)
    {
        _classify = classify;
        _currentEngine = currentEngine;
        _homeAssistant = homeAssistant;
        _settings = settings;
        _logger = logger;
        _statistics = statistics;
    }

    /// <summary>The answer to <paramref name="request"/>, or null for an event an intent service does not answer (it is ignored, as the reference servers do).</summary>
    public async Task<WyomingEvent?> AnswerAsync(WyomingEvent request, CancellationToken cancellation)
    {
        switch (request.Type)
        {
            case WyomingEventTypes.Describe:
                return Info();
            case WyomingEventTypes.Transcript or WyomingEventTypes.Recognize:
                return await RecognizeAsync(request, cancellation);
            default:
                _logger.LogDebug("Wyoming event {Type} ignored", request.Type);
                return null;
        }
    }

    public static WyomingEvent Error(string code, string text) => WyomingEvent.Create(WyomingEventTypes.Error, w =>
    {
        w.WriteString("text", text);
        w.WriteString("code", code);
    });

    private async Task<WyomingEvent> RecognizeAsync(WyomingEvent request, CancellationToken cancellation)
    {
        long start = Stopwatch.GetTimestamp();
        if (!request.Data.TryGetValue("text", out JsonElement textElement) || textElement.ValueKind != JsonValueKind.String)
        {
            _statistics?.RecordFailed();
            return Error(CodeRequestInvalid, $"{request.Type} needs \"text\", a string");
        }
        string text;
        try
        {
            text = textElement.GetString()!;
        }
        catch (InvalidOperationException)
        {
            _statistics?.RecordFailed();
            return Error(CodeRequestInvalid, $"the {request.Type}'s \"text\" is not valid UTF-16 (an escaped lone surrogate)");
        }
        request.Data.TryGetValue("context", out JsonElement context);

        IntentResult result;
        try
        {
            result = await _classify(text, cancellation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _statistics?.RecordFailed();
            _logger.LogError(e, "Wyoming: classifying a {Type} failed", request.Type);
            return Error(CodeClassificationFailed, "the intent service failed to classify this text; see its log");
        }

        try
        {
            return Answer(result, context, start);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            // The context is echoed as it came; System.Text.Json refuses to write an escaped lone surrogate.
            _statistics?.RecordFailed();
            return Error(CodeRequestInvalid, $"the {request.Type}'s context cannot be echoed: it holds a string that is not valid UTF-16");
        }
    }

    private WyomingEvent Answer(IntentResult result, JsonElement context, long start)
    {
        IReadOnlyList<WyomingEntity> entities = HomeAssistantIntents.Entities(result);
        string? notExecutable = result.Intent is { } name && _settings.HomeAssistantIntentsOnly ? _homeAssistant.WhyNotExecutable(name, entities) : null;
        _statistics?.RecordCompleted(Stopwatch.GetElapsedTime(start));
        if (result.Intent is null || notExecutable is not null)
        {
            _logger.LogDebug("Wyoming: not recognized: {Reason}", notExecutable ?? $"confidence {result.Confidence:F3}");
            return WyomingEvent.Create(WyomingEventTypes.NotRecognized, w =>
            {
                w.WriteString("text", _settings.NotRecognizedText);
                WriteContext(w, context);
            });
        }
        return WyomingEvent.Create(WyomingEventTypes.Intent, w =>
        {
            w.WriteString("name", result.Intent);
            w.WriteStartArray("entities");
            foreach (WyomingEntity entity in entities)
            {
                w.WriteStartObject();
                w.WriteString("name", entity.Name);
                if (entity.Number is double number) w.WriteNumber("value", number);
                else w.WriteString("value", entity.Text);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            WriteContext(w, context);
        });
    }

    private static void WriteContext(Utf8JsonWriter writer, JsonElement context)
    {
        if (context.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
        {
            writer.WritePropertyName("context");
            context.WriteTo(writer);
        }
    }

    private WyomingEvent Info()
    {
        IntentEngine? engine = _currentEngine();
        string intents = engine is null ? "no intents loaded yet" : $"{engine.IntentNames.Count} intents from {Path.GetFileName(engine.Definitions.Source.TrimEnd('/', '\\'))}";
        return WyomingEvent.Create(WyomingEventTypes.Info, w =>
        {
            w.WriteStartArray("intent");
            w.WriteStartObject();
            w.WriteString("name", "EdgeSlm");
            WriteAttribution(w, "EdgeSlm", "");
            w.WriteBoolean("installed", true);
            w.WriteString("description", "Intent recognition on the device: Home Assistant's templates matched exactly, paraphrases by a MiniLM classifier");
            w.WriteString("version", Version);
            w.WriteStartArray("models");
            w.WriteStartObject();
            w.WriteString("name", engine is null ? "intents" : Path.GetFileName(engine.Definitions.Source.TrimEnd('/', '\\')));
            WriteAttribution(w, "Home Assistant intents (CC BY 4.0) or your own", "https://github.com/home-assistant/intents");
            w.WriteBoolean("installed", true);
            w.WriteString("description", intents);
            w.WriteString("version", engine?.Definitions.ContentHash[..12] ?? "");
            w.WriteStartArray("languages");
            foreach (string language in _settings.ParsedLanguages())
            {
                w.WriteStringValue(language);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
        });
    }

    private static void WriteAttribution(Utf8JsonWriter writer, string name, string url)
    {
        writer.WriteStartObject("attribution");
        writer.WriteString("name", name);
        writer.WriteString("url", url);
        writer.WriteEndObject();
    }
}
