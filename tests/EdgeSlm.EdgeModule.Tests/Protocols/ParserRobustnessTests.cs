using System.Buffers;
using System.Text;
using EdgeSlm.EdgeModule.Protocols;

namespace EdgeSlm.EdgeModule.Tests.Protocols;

public sealed class ParserRobustnessTests
{
    private static ReadOnlySequence<byte> Payload(string json) => new(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Hermes_query_with_an_asrConfidence_beyond_single_precision_is_a_request_error()
    {
        var hermes = new HermesProtocol(HermesProtocol.DefaultErrorTopic);

        object parsed = hermes.Parse(HermesProtocol.QueryTopic, Payload("""{"input":"x","asrConfidence":1e400}"""), 8192);

        Assert.Contains("asrConfidence", Assert.IsType<RequestError>(parsed).Reason);
    }

    [Theory]
    [InlineData("""{"input":"\ud800","text":"\ud800"}""")]
    [InlineData("""{"input":"x","text":"x","\udc00":1}""")]
    [InlineData("""{"input":"x","text":"x","intentFilter":["\ud83d"]}""")]
    public void Escaped_lone_surrogates_are_request_errors_in_both_protocols(string json)
    {
        var hermes = new HermesProtocol(HermesProtocol.DefaultErrorTopic);
        var native = new NativeProtocol("default");

        RequestError hermesError = Assert.IsType<RequestError>(hermes.Parse(HermesProtocol.QueryTopic, Payload(json), 8192));
        RequestError nativeError = Assert.IsType<RequestError>(native.Parse(native.TranscriptTopic, Payload(json), 8192, null, null));

        Assert.Contains("UTF-16", hermesError.Reason);
        Assert.Contains("UTF-16", nativeError.Reason);
    }
}
