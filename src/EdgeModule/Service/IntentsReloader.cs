using System.Buffers;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Templates;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Service;

/// <summary>
/// New intents while the module runs, from the retained <c>intents/set</c> message or a changed intents file: they
/// are checked, trained in the background and swapped in. The intents in use stay on any failure, which is said on
/// the intents status.
/// </summary>
public sealed class IntentsReloader(IntentRuntime runtime, StatusPublisher status, ILogger logger, CancellationToken stopping)
{
    /// <summary>Largest intents YAML accepted on the topic.</summary>
    public const int MaxYamlBytes = 4 * 1024 * 1024;

    public void OnIntentsSet(string topic, ReadOnlySequence<byte> payload)
    {
        if (!PayloadReader.TryReadText(payload, MaxYamlBytes, out string yaml, out string reason))
        {
            _ = status.PublishTrainingStatusAsync("error", reason, null);
            return;
        }
        if (yaml.Length == 0)
        {
            return; // a cleared retained message
        }
        IntentDefinitions definitions;
        try
        {
            definitions = IntentDefinitions.FromYaml(yaml, topic);
        }
        catch (Exception e) when (e is IntentFileException or TemplateFormatException)
        {
            logger.LogWarning("Intents on {Topic} rejected: {Reason}", topic, e.Message);
            _ = status.PublishTrainingStatusAsync("error", e.Message, null);
            return;
        }
        if (definitions.ContentHash == runtime.Engine.Definitions.ContentHash)
        {
            return; // the retained message again after a reconnect: already in use
        }
        _ = RetrainAsync(definitions);
    }

    public void OnIntentsFileChanged(string path)
    {
        IntentDefinitions definitions;
        try
        {
            definitions = IntentDefinitions.Load(path);
        }
        catch (Exception e) when (e is IntentFileException or TemplateFormatException or IOException)
        {
            logger.LogWarning("Intents file {Path} not reloaded, keeping the intents in use: {Reason}", path, e.Message);
            _ = status.PublishTrainingStatusAsync("error", e.Message, null);
            return;
        }
        if (definitions.ContentHash != runtime.Engine.Definitions.ContentHash)
        {
            _ = RetrainAsync(definitions);
        }
    }

    private async Task RetrainAsync(IntentDefinitions definitions)
    {
        try
        {
            await status.PublishTrainingStatusAsync("training", null, null);
            IntentEngine engine = await runtime.RetrainAsync(definitions, stopping);
            await status.PublishTrainingStatusAsync("ready", null, engine);
            await status.PublishDiscoveryAsync(engine);
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            logger.LogWarning("Retraining failed, keeping the intents in use: {Reason}", e.Message);
            await status.PublishTrainingStatusAsync("error", e.Message, null);
        }
    }
}
