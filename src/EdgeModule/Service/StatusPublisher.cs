using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.LanguageModel;
using EdgeSlm.Intents.Recognition;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// Says how the module is: the retained intents and model status, and Home Assistant's discovery config. Under
/// Azure the hub takes no other topics, so training goes to the twin's reported properties and the model status to
/// the log; without MQTT (Wyoming alone) both go to the log.
/// </summary>
public sealed class StatusPublisher(ModuleTopics topics, HomeAssistantSettings homeAssistant, MqttConnection? connection, AzureModule? azure,
    IntentRuntime runtime, ILogger logger, CancellationToken stopping)
{
    /// <summary><c>ready</c>, <c>replaced</c> or <c>error</c> on the model status topic, with what the module runs.</summary>
    public async Task PublishModelStatusAsync(string status, string? message)
    {
        if (azure is not null || connection is null)
        {
            logger.LogInformation("Model status {Status}{Message}", status, message is null ? "" : ": " + message);
            return;
        }
        byte[] payload = JsonFields.Object(w =>
        {
            w.WriteString("status", status);
            w.WriteString("model", runtime.ModelDescription);
            w.WriteString("threads", runtime.ThreadsDescription);
            if (runtime.ModelFile is not null) w.WriteString("file", runtime.ModelFile);
            if (runtime.ModelWarning is not null) w.WriteBoolean("convertedInMemory", true);
            if (message is not null) w.WriteString(status == "error" ? "error" : "message", message);
            if (runtime.SlmFile is not null)
            {
                w.WriteStartObject("slm");
                w.WriteString("file", runtime.SlmFile);
                w.WriteString("mode", runtime.SlmMode.ToString().ToLowerInvariant());
                SlmRecognizer? slm = runtime.Slm;
                w.WriteString("status", slm is not null ? "ready" : "error");
                if (runtime.SlmError is not null) w.WriteString("error", runtime.SlmError);
                if (slm is not null)
                {
                    w.WriteNumber("promptTokens", slm.PromptTokens);
                    w.WriteNumber("promptMilliseconds", Math.Round(slm.PromptSeconds * 1000, 1));
                    w.WriteNumber("threads", slm.Threads);
                }
                w.WriteEndObject();
            }
            w.WriteString("time", DateTimeOffset.UtcNow.ToString("O"));
        });
        await PublishAsync(new OutgoingMessage(topics.ModelStatus, payload, Retain: true));
    }

    /// <summary><c>training</c>, <c>ready</c> (with the engine) or <c>error</c> on the intents status topic.</summary>
    public async Task PublishTrainingStatusAsync(string status, string? error, IntentEngine? engine)
    {
        if (azure is not null)
        {
            await azure.ReportTrainingAsync(status, error, engine);
            return;
        }
        if (connection is null)
        {
            return; // the runtime logs every training
        }
        byte[] payload = JsonFields.Object(w => ResultJson.WriteTrainingStatus(w, status, error, engine, namesAsOneString: false));
        await PublishAsync(new OutgoingMessage(topics.IntentsStatus, payload, Retain: true));
    }

    /// <summary>The discovery config for <paramref name="engine"/>'s intents, when discovery is on.</summary>
    public async Task PublishDiscoveryAsync(IntentEngine engine)
    {
        if (homeAssistant.Discovery && azure is null && connection is not null)
        {
            await PublishAsync(HomeAssistantDiscovery.Config(homeAssistant.DiscoveryPrefix, topics.SiteId, engine.IntentNames));
        }
    }

    private async Task PublishAsync(OutgoingMessage message)
    {
        try
        {
            await connection!.PublishAsync(message, stopping);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
