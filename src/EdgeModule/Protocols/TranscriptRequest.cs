namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>The protocols the module speaks; several may be on at once.</summary>
[Flags]
public enum ProtocolProfile
{
    None = 0,
    Hermes = 1,
    Native = 2,
    /// <summary>Azure IoT Hub / IoT Edge: module input and output, twin, direct methods (see Azure/AzureModule).</summary>
    Azure = 4,
    /// <summary>The Wyoming intent service on its own TCP port, for Home Assistant's voice pipeline (see Wyoming/).</summary>
    Wyoming = 8,
}

/// <summary>What a protocol reads from a message: a <see cref="TranscriptRequest"/> or a <see cref="RequestError"/>, nothing else.</summary>
public abstract record ParsedMessage
{
    private protected ParsedMessage()
    {
    }
}

/// <summary>
/// One utterance to classify, whichever protocol brought it. <see cref="Id"/> is the sender's request id, or one
/// derived from the message itself so that a redelivered duplicate carries the same id.
/// </summary>
public sealed record TranscriptRequest(
    ProtocolProfile Profile,
    string Id,
    string Text,
    string SiteId,
    string? SessionId = null,
    string? CustomData = null,
    IReadOnlyCollection<string>? IntentFilter = null,
    string? ResponseTopic = null,
    byte[]? CorrelationData = null,
    float? AsrConfidence = null,
    string? Lang = null,
    bool IdGiven = true) : ParsedMessage;

/// <summary>A message that cannot be classified: why, and as much of the request as could be read.</summary>
public sealed record RequestError(ProtocolProfile Profile, string Id, string Reason, string SiteId, string? SessionId = null, string? Context = null,
    string? ResponseTopic = null, byte[]? CorrelationData = null) : ParsedMessage;
