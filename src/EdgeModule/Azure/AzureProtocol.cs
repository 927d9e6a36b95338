using System.Buffers;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// Transcripts from the module input <see cref="AzureSettings.InputName"/> (the native protocol's JSON or plain text)
/// and from the <c>classify</c> direct method; answers on the output <see cref="AzureSettings.OutputName"/> (or as
/// the method's response), errors on <see cref="AzureSettings.ErrorOutputName"/>. The hub takes no other topics.
/// </summary>
public sealed class AzureProtocol(AzureSettings settings, string siteId, IotHubTopics topics) : MessageProtocol
{
    private readonly NativeProtocol _native = new(siteId);
    private readonly string _outputTopic = topics.OutputTopic(settings.OutputName);
    private readonly string _errorTopic = topics.OutputTopic(settings.ErrorOutputName);

    public override ProtocolProfile Profile => ProtocolProfile.Azure;

    public override IEnumerable<string> Subscriptions(string share) => [topics.InputFilter, IotHubTopics.MethodFilter];

    /// <summary>Everything the hub sends that is not twin or method control (<see cref="AzureModule.IsControl"/>).</summary>
    public override bool Reads(string topic) => true;

    public override ParsedMessage Parse(ReceivedMessage message, int maxPayloadBytes)
    {
        string topic = message.Message.Topic;
        ReadOnlySequence<byte> payload = message.Message.Payload;
        if (IotHubTopics.MethodName(topic) == "classify")
        {
            string rid = IotHubTopics.QueryValue(topic, "$rid") ?? "";
            return AzurePayloads.MethodRequest(topic, payload, maxPayloadBytes, siteId, _native, IotHubTopics.MethodResponse(200, rid), IotHubTopics.MethodResponse(400, rid));
        }
        string? input = topics.InputName(topic);
        if (input is not null && (topics.ModuleId is null || input == settings.InputName))
        {
            return AzurePayloads.AsAzure(_native.Parse(topic, payload, maxPayloadBytes, null, null), null);
        }
        string reason = input is null ? $"no protocol reads topic {topic}" : $"no transcripts are read from input '{input}' (Azure:InputName is '{settings.InputName}')";
        return new RequestError(ProtocolProfile.Azure, PayloadReader.DerivedId(topic, payload), reason, siteId);
    }

    /// <summary>The native protocol's result JSON, on the output (or as the classify method's response).</summary>
    public override IEnumerable<OutgoingMessage> Answers(TranscriptRequest request, IntentResult result, double elapsedMilliseconds) =>
        [_native.Result(request, result, elapsedMilliseconds) with { Topic = request.ResponseTopic ?? _outputTopic, CorrelationData = null }];

    public override OutgoingMessage Error(RequestError error) =>
        _native.Error(error) with { Topic = error.ResponseTopic ?? _errorTopic, CorrelationData = null };
}
