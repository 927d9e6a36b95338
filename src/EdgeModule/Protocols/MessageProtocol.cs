using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// One way of asking for intents over MQTT (Hermes, the native topics, Azure IoT): which topics it reads, how a
/// message becomes a request, and how an answer or an error goes back. The inference worker only sees this shape.
/// </summary>
public abstract class MessageProtocol
{
    public abstract ProtocolProfile Profile { get; }

    /// <summary>Topic filters to subscribe to; <paramref name="share"/> is empty or <c>$share/&lt;group&gt;/</c>.</summary>
    public abstract IEnumerable<string> Subscriptions(string share);

    /// <summary>True when this protocol reads messages on <paramref name="topic"/>.</summary>
    public abstract bool Reads(string topic);

    /// <summary>A request to classify, or why the message cannot be one.</summary>
    public abstract ParsedMessage Parse(ReceivedMessage message, int maxPayloadBytes);

    /// <summary>What goes out for an answer, in order.</summary>
    public abstract IEnumerable<OutgoingMessage> Answers(TranscriptRequest request, IntentResult result, double elapsedMilliseconds);

    public abstract OutgoingMessage Error(RequestError error);
}
