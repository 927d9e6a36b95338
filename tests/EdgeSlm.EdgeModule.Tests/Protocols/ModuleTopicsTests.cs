using EdgeSlm.EdgeModule.Protocols;

namespace EdgeSlm.EdgeModule.Tests.Protocols;

public sealed class ModuleTopicsTests
{
    [Fact]
    public void Every_site_topic_is_under_edgeslm_and_the_site()
    {
        var topics = new ModuleTopics("site-7");
        Assert.Equal(
            ["edgeslm/site-7/transcript", "edgeslm/site-7/intent", "edgeslm/site-7/error", "edgeslm/site-7/intents/set", "edgeslm/site-7/intents/status",
             "edgeslm/site-7/model/status", "edgeslm/site-7/status", "edgeslm/site-7/telemetry", "edgeslm/site-7/event"],
            [topics.Transcript, topics.Intent, topics.Error, topics.IntentsSet, topics.IntentsStatus, topics.ModelStatus, topics.Status, topics.Telemetry, topics.Event]);
        Assert.Equal(topics.Transcript, new NativeProtocol("site-7").TranscriptTopic);
        Assert.Equal(topics.Event, HomeAssistantDiscovery.EventTopic("site-7"));
    }
}
