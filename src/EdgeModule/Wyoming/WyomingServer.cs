using System.Net.Sockets;
using System.Net;
using Microsoft.Extensions.Logging;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// The Wyoming intent service over TCP. Home Assistant opens a connection per request, so connections are served
/// concurrently, each by its own task: read an event, answer it, repeat until the peer closes. What breaks a limit
/// (header line, <c>data_length</c>, <c>payload_length</c>, connections, idle time) or the framing is answered with
/// an <c>error</c> event whose <c>code</c> says which, and that connection is closed (its stream is out of step);
/// the server and every other connection go on.
/// </summary>
public sealed class WyomingServer : IAsyncDisposable
{
    public const string CodeTooManyConnections = "too-many-connections";
    public const string CodeIdleTimeout = "idle-timeout";

    private readonly WyomingSettings _settings;
    private readonly WyomingIntentHandler _handler;
    private readonly ILogger _logger;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<Task> _connections = [];
    private Task _acceptLoop = Task.CompletedTask;
    private int _open;

    public WyomingServer(WyomingSettings settings, WyomingIntentHandler handler, ILogger logger)
    {
        List<string> errors = settings.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(settings));
        }
        _settings = settings;
        _handler = handler;
        _logger = logger;
        _listener = new TcpListener(settings.ParsedAddress(), settings.Port);
        if (settings.ParsedAddress().Equals(IPAddress.IPv6Any))
        {
            _listener.Server.DualMode = true;
        }
    }

    /// <summary>The port it listens on (the one picked when the setting is 0).</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections open now.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    /// <summary>Runs until <see cref="DisposeAsync"/>; faults only if accepting itself fails.</summary>
    public Task Running => _acceptLoop;

    /// <exception cref="SocketException">The address or port cannot be used (for example, it is taken).</exception>
    public void Start()
    {
        _listener.Start(backlog: 128);
        _acceptLoop = Task.Run(() => AcceptAsync(_stopping.Token));
    }

    private async Task AcceptAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                continue; // the peer gave up before we accepted
            }
            catch (SocketException e)
            {
                // Out of file descriptors or memory, say: wait for connections to end rather than spin or stop serving.
                _logger.LogWarning("Wyoming: accepting a connection failed: {Reason}", e.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), stopping);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            Task connection = ServeAsync(client, stopping);
            lock (_connections)
            {
                _connections.Add(connection);
            }
            _ = connection.ContinueWith(t =>
            {
                lock (_connections) _connections.Remove(t);
            }, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(TcpClient client, CancellationToken stopping)
    {
        int open = Interlocked.Increment(ref _open);
        string peer = client.Client.RemoteEndPoint?.ToString() ?? "?";
        try
        {
            await Task.Yield();
            client.NoDelay = true;
            using NetworkStream stream = client.GetStream();
            if (open > _settings.MaxConnections)
            {
                _logger.LogWarning("Wyoming: refused {Peer}: {Open} connections open, the limit is {Limit} (Wyoming:MaxConnections)", peer, open - 1, _settings.MaxConnections);
                await SendErrorAsync(stream, CodeTooManyConnections, $"{open - 1} connections are open, the limit is {_settings.MaxConnections} (Wyoming:MaxConnections); try again", stopping);
                return;
            }
            await ConverseAsync(stream, peer, stopping);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer went away or the server is stopping: nothing to answer.
            _logger.LogDebug("Wyoming: connection {Peer} ended: {Reason}", peer, e.Message);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Wyoming: connection {Peer} failed", peer);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
            client.Dispose();
        }
    }

    private async Task ConverseAsync(NetworkStream stream, string peer, CancellationToken stopping)
    {
        var reader = new WyomingEventReader(stream, _settings.Limits);
        var idle = TimeSpan.FromSeconds(_settings.IdleTimeoutSeconds);
        while (true)
        {
            WyomingEvent? request;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                timeout.CancelAfter(idle);
                try
                {
                    request = await reader.ReadAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                {
                    _logger.LogInformation("Wyoming: closed {Peer}: no complete event for {Seconds} s (Wyoming:IdleTimeoutSeconds)", peer, _settings.IdleTimeoutSeconds);
                    await SendErrorAsync(stream, CodeIdleTimeout, $"no complete event for {_settings.IdleTimeoutSeconds} s (Wyoming:IdleTimeoutSeconds); closing", stopping);
                    return;
                }
                catch (WyomingProtocolException e)
                {
                    _logger.LogWarning("Wyoming: closed {Peer}: {Code}: {Reason}", peer, e.Code, e.Message);
                    await SendErrorAsync(stream, e.Code, e.Message, stopping);
                    return;
                }
                catch (EndOfStreamException e)
                {
                    _logger.LogInformation("Wyoming: {Peer} disconnected inside an event: {Reason}", peer, e.Message);
                    return;
                }
            }
            if (request is null)
            {
                return; // closed cleanly between events
            }
            WyomingEvent? answer = await _handler.AnswerAsync(request, stopping);
            if (answer is not null)
            {
                await WyomingEventWriter.WriteAsync(stream, answer, stopping);
            }
        }
    }

    private static async Task SendErrorAsync(NetworkStream stream, string code, string text, CancellationToken stopping)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        // A peer that reads nothing must not hold the connection open.
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        await WyomingEventWriter.WriteAsync(stream, WyomingIntentHandler.Error(code, text), timeout.Token);
        // Unread bytes at the close would make it a reset (RST), which can make the peer drop the error event
        // unread: say we are done, then read what the peer still sends (a bounded amount, briefly) before closing.
        stream.Socket.Shutdown(SocketShutdown.Send);
        var discard = new byte[16 * 1024];
        long drained = 0;
        try
        {
            while (drained < 1024 * 1024 && await stream.ReadAsync(discard, timeout.Token) is int read and > 0)
            {
                drained += read;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
        {
        }
    }

    /// <summary>Stops accepting, ends every connection and waits for them (five seconds at most).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        _stopping.Cancel();
        _listener.Stop();
        Task[] connections;
        lock (_connections)
        {
            connections = [.. _connections, _acceptLoop];
        }
        try
        {
            await Task.WhenAll(connections).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("Wyoming: connections still open five seconds after the stop");
        }
        _listener.Dispose();
        _stopping.Dispose();
    }
}
