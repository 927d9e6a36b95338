namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>Every <c>edgeslm/&lt;site&gt;/...</c> topic of one site, built here and nowhere else.</summary>
public sealed record ModuleTopics(string SiteId)
{
    private string Topic(string name) => $"edgeslm/{SiteId}/{name}";

    /// <summary>In: transcripts (the native protocol).</summary>
    public string Transcript => Topic("transcript");

    /// <summary>Out: answers, and errors for requests that could not be answered (the native protocol).</summary>
    public string Intent => Topic("intent");
    public string Error => Topic("error");

    /// <summary>In (retained): new intents; out (retained): how training them went.</summary>
    public string IntentsSet => Topic("intents/set");
    public string IntentsStatus => Topic("intents/status");

    /// <summary>Out (retained): whether the model file is usable.</summary>
    public string ModelStatus => Topic("model/status");

    /// <summary>Out (retained): <c>online</c>, or <c>offline</c> as the last will.</summary>
    public string Status => Topic("status");

    public string Telemetry => Topic("telemetry");

    /// <summary>Out: a Home Assistant event per answer, when discovery is on.</summary>
    public string Event => Topic("event");
}
