using System.Net.Sockets;
using System.Net;
using System.Text;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Intents.Recognition;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>The server over real TCP on a free port: concurrent connections, limits answered with error events, peers that misbehave.</summary>
public sealed class WyomingServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private static async Task<WyomingServer> Start(WyomingSettings? settings = null, Func<string, CancellationToken, Task<IntentResult>>? classify = null)
    {
        settings ??= new WyomingSettings();
        settings.Port = 0;
        settings.Address = "127.0.0.1";
        var handler = new WyomingIntentHandler(classify ?? WyomingIntentHandlerTests.Classify, () => null, HomeAssistantIntents.BuiltIn, settings, NullLogger.Instance);
        var server = new WyomingServer(settings, handler, NullLogger.Instance);
        server.Start();
        await Task.CompletedTask;
        return server;
    }

    /// <summary>One connection as a test client sees it.</summary>
    private sealed class Client : IAsyncDisposable
    {
        private readonly TcpClient _tcp = new();
        private WyomingEventReader _reader = null!;

        public NetworkStream Stream { get; private set; } = null!;

        public static async Task<Client> Connect(WyomingServer server)
        {
            var client = new Client();
            await client._tcp.ConnectAsync(IPAddress.Loopback, server.Port);
            client.Stream = client._tcp.GetStream();
            client._reader = new WyomingEventReader(client.Stream, new WyomingLimits(1 << 20, 1 << 20, 1 << 20));
            return client;
        }

        public Task Send(WyomingEvent e) => WyomingEventWriter.WriteAsync(Stream, e).AsTask();

        public Task SendRaw(string text) => Stream.WriteAsync(Encoding.UTF8.GetBytes(text)).AsTask();

        public async Task<WyomingEvent?> Read() => await _reader.ReadAsync().AsTask().WaitAsync(Timeout);

        public async Task<WyomingEvent> Ask(WyomingEvent e)
        {
            await Send(e);
            return await Read() ?? throw new EndOfStreamException("the server closed the connection without an answer");
        }

        public async ValueTask DisposeAsync()
        {
            _tcp.Dispose();
            await Task.CompletedTask;
        }
    }

    private static WyomingEvent Transcript(string text) => WyomingEvent.Create("transcript", w => w.WriteString("text", text));

    private static async Task AssertStillAnswers(WyomingServer server)
    {
        await using Client client = await Client.Connect(server);
        Assert.Equal("info", (await client.Ask(WyomingEvent.Empty("describe"))).Type);
    }

    [Fact]
    public async Task Several_events_on_one_connection_are_answered_in_order()
    {
        await using WyomingServer server = await Start();
        await using Client client = await Client.Connect(server);
        Assert.Equal("info", (await client.Ask(WyomingEvent.Empty("describe"))).Type);
        Assert.Equal("HassTurnOn", (await client.Ask(Transcript("turn on the kitchen light"))).String("name"));
        Assert.Equal("not-recognized", (await client.Ask(Transcript("hmm"))).Type);
    }

    [Fact]
    public async Task Connections_are_served_at_once_not_one_after_another()
    {
        const int connections = 12;
        int inside = 0;
        var allInside = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Each classification waits until every connection's request is inside the classifier: a server that
        // served connections one at a time would never get there and the test would time out.
        async Task<IntentResult> Gate(string text, CancellationToken cancellation)
        {
            if (Interlocked.Increment(ref inside) == connections) allInside.TrySetResult();
            await allInside.Task.WaitAsync(Timeout, cancellation);
            return await WyomingIntentHandlerTests.Classify(text, cancellation);
        }
        await using WyomingServer server = await Start(new WyomingSettings { MaxConnections = connections }, Gate);
        Task<WyomingEvent>[] answers = Enumerable.Range(0, connections).Select(async i =>
        {
            await using Client client = await Client.Connect(server);
            return await client.Ask(WyomingEvent.Create("transcript", w =>
            {
                w.WriteString("text", "turn on the kitchen light");
                w.WriteStartObject("context");
                w.WriteNumber("i", i);
                w.WriteEndObject();
            }));
        }).ToArray();
        WyomingEvent[] results = await Task.WhenAll(answers);
        for (int i = 0; i < connections; i++)
        {
            Assert.Equal("intent", results[i].Type);
            Assert.Equal(i, results[i].Data["context"].GetProperty("i").GetInt32());
        }
    }

    [Theory]
    [InlineData("not json at all\n", WyomingEventReader.CodeHeaderInvalid)]
    [InlineData("{\"type\":\"transcript\",\"data_length\":100000}\n", WyomingEventReader.CodeDataTooLong)]
    [InlineData("{\"type\":\"audio-chunk\",\"payload_length\":100000}\n", WyomingEventReader.CodePayloadTooLong)]
    [InlineData("{\"type\":\"transcript\",\"data_length\":5}\n[1,2]", WyomingEventReader.CodeDataInvalid)]
    public async Task What_breaks_the_framing_or_a_limit_gets_an_error_event_then_the_connection_closes_and_the_server_goes_on(string sent, string code)
    {
        await using WyomingServer server = await Start(new WyomingSettings { MaxDataBytes = 1024, MaxPayloadBytes = 1024 });
        await using (Client client = await Client.Connect(server))
        {
            await client.SendRaw(sent);
            WyomingEvent error = (await client.Read())!;
            Assert.Equal("error", error.Type);
            Assert.Equal(code, error.String("code"));
            Assert.False(string.IsNullOrEmpty(error.String("text")));
            Assert.Null(await client.Read());
        }
        await AssertStillAnswers(server);
    }

    [Fact]
    public async Task A_header_line_over_the_limit_is_refused_while_it_is_still_coming()
    {
        await using WyomingServer server = await Start(new WyomingSettings { MaxHeaderBytes = 1024 });
        await using Client client = await Client.Connect(server);
        // No newline ever: the error comes once the limit is passed, not when the line ends.
        await client.SendRaw("{\"type\":\"describe\",\"pad\":\"" + new string('x', 4000));
        WyomingEvent error = (await client.Read())!;
        Assert.Equal(WyomingEventReader.CodeHeaderTooLong, error.String("code"));
    }

    [Fact]
    public async Task A_connection_over_the_limit_is_told_so_and_closed()
    {
        await using WyomingServer server = await Start(new WyomingSettings { MaxConnections = 2 });
        await using Client first = await Client.Connect(server);
        await using Client second = await Client.Connect(server);
        // Both are being served once each has had an answer.
        Assert.Equal("info", (await first.Ask(WyomingEvent.Empty("describe"))).Type);
        Assert.Equal("info", (await second.Ask(WyomingEvent.Empty("describe"))).Type);
        await using (Client third = await Client.Connect(server))
        {
            WyomingEvent error = (await third.Read())!;
            Assert.Equal(WyomingServer.CodeTooManyConnections, error.String("code"));
            Assert.Null(await third.Read());
        }
        Assert.Equal("intent", (await first.Ask(Transcript("turn on the kitchen light"))).Type);
    }

    [Fact]
    public async Task An_idle_connection_is_told_so_and_closed()
    {
        await using WyomingServer server = await Start(new WyomingSettings { IdleTimeoutSeconds = 1 });
        await using Client client = await Client.Connect(server);
        await client.SendRaw("{\"type\":\"describ"); // an event that never completes
        WyomingEvent error = (await client.Read())!;
        Assert.Equal(WyomingServer.CodeIdleTimeout, error.String("code"));
        Assert.Null(await client.Read());
    }

    [Fact]
    public async Task Clients_that_disconnect_inside_an_event_leave_the_server_serving_and_their_connections_closed()
    {
        await using WyomingServer server = await Start();
        foreach (string partial in new[] { "{\"type\":\"transcr", "{\"type\":\"transcript\",\"data_length\":50}\n{\"text\":", "{\"type\":\"x\",\"payload_length\":9}\nabc" })
        {
            await using Client client = await Client.Connect(server);
            await client.SendRaw(partial);
        }
        await AssertStillAnswers(server);
        var deadline = DateTime.UtcNow + Timeout;
        while (server.OpenConnections > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
        Assert.Equal(0, server.OpenConnections);
    }

    [Fact]
    public async Task Disposing_ends_open_connections_and_frees_the_port()
    {
        WyomingServer server = await Start();
        int port = server.Port;
        Client idle = await Client.Connect(server);
        Assert.Equal("info", (await idle.Ask(WyomingEvent.Empty("describe"))).Type);
        await server.DisposeAsync().AsTask().WaitAsync(Timeout, TestContext.Current.CancellationToken);
        Assert.Null(await idle.Read());
        await idle.DisposeAsync();
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        listener.Stop();
    }
}
