using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text;

namespace EdgeSlm.EdgeModule.Tests.Azure;

/// <summary>
/// A stand-in for the IoT Edge workload API: HTTP/1.1 on a unix socket, one request per connection. <c>/sign</c>
/// answers the HMAC-SHA256 of the data under <see cref="Key"/>; <c>/trust-bundle</c> a PEM certificate. Every
/// request line is recorded.
/// </summary>
public sealed class AzureWorkloadServer : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _requests = [];
    private readonly Task _serving;

    public AzureWorkloadServer(byte[] key, string? trustBundlePem = null)
    {
        Key = key;
        TrustBundlePem = trustBundlePem;
        SocketPath = Path.Combine(Path.GetTempPath(), $"edgeslm-wl-{Guid.NewGuid():N}"[..20] + ".sock");
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(8);
        _serving = Task.Run(ServeAsync);
    }

    public byte[] Key { get; }
    public string? TrustBundlePem { get; }
    public string SocketPath { get; }
    public string Uri => "unix://" + SocketPath;

    public IReadOnlyList<string> Requests
    {
        get { lock (_requests) return _requests.ToArray(); }
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }
            _ = Task.Run(() => AnswerAsync(client));
        }
    }

    private async Task AnswerAsync(Socket client)
    {
        using var stream = new NetworkStream(client, ownsSocket: true);
        var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int headerEnd;
        while ((headerEnd = IndexOf(buffer.ToArray(), "\r\n\r\n"u8)) < 0)
        {
            int n = await stream.ReadAsync(chunk);
            if (n == 0) return;
            buffer.Write(chunk, 0, n);
        }
        string head = Encoding.ASCII.GetString(buffer.ToArray(), 0, headerEnd);
        string[] lines = head.Split("\r\n");
        int length = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            .Select(p => int.Parse(p[1].Trim())).FirstOrDefault();
        while (buffer.Length < headerEnd + 4 + length)
        {
            int n = await stream.ReadAsync(chunk);
            if (n == 0) return;
            buffer.Write(chunk, 0, n);
        }
        byte[] body = buffer.ToArray().AsSpan(headerEnd + 4, length).ToArray();
        lock (_requests) _requests.Add(lines[0]);

        (int status, string json) = Answer(lines[0], body);
        byte[] content = Encoding.UTF8.GetBytes(json);
        byte[] response = Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {(status == 200 ? "OK" : "Error")}\r\nContent-Type: application/json\r\nContent-Length: {content.Length}\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(response);
        await stream.WriteAsync(content);
    }

    private (int Status, string Json) Answer(string requestLine, byte[] body)
    {
        string[] parts = requestLine.Split(' ');
        if (parts[0] == "POST" && parts[1].StartsWith("/modules/edgeslm/genid/", StringComparison.Ordinal) && parts[1].Contains("/sign?api-version=", StringComparison.Ordinal))
        {
            using JsonDocument request = JsonDocument.Parse(body);
            if (request.RootElement.GetProperty("keyId").GetString() != "primary" || request.RootElement.GetProperty("algo").GetString() != "HMACSHA256")
            {
                return (400, """{"message":"bad keyId or algo"}""");
            }
            byte[] data = request.RootElement.GetProperty("data").GetBytesFromBase64();
            return (200, $$"""{"digest":"{{Convert.ToBase64String(HMACSHA256.HashData(Key, data))}}"}""");
        }
        if (parts[0] == "GET" && parts[1].StartsWith("/trust-bundle?api-version=", StringComparison.Ordinal) && TrustBundlePem is not null)
        {
            return (200, JsonSerializer.Serialize(new Dictionary<string, string> { ["certificate"] = TrustBundlePem }));
        }
        return (404, """{"message":"Module not found"}""");
    }

    private static int IndexOf(byte[] data, ReadOnlySpan<byte> pattern) => data.AsSpan().IndexOf(pattern);

    /// <summary>The environment an Edge runtime would give module <paramref name="moduleId"/>, pointing at this server.</summary>
    public Func<string, string?> Environment(string gateway, string moduleId = "edgeslm") => name => name switch
    {
        "IOTEDGE_WORKLOADURI" => Uri,
        "IOTEDGE_IOTHUBHOSTNAME" => "myhub.azure-devices.net",
        "IOTEDGE_GATEWAYHOSTNAME" => gateway,
        "IOTEDGE_DEVICEID" => "pi-kitchen",
        "IOTEDGE_MODULEID" => moduleId,
        "IOTEDGE_MODULEGENERATIONID" => "637000000000000000",
        "IOTEDGE_APIVERSION" => "2019-01-30",
        "IOTEDGE_AUTHSCHEME" => "sasToken",
        _ => null,
    };

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try
        {
            _serving.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
        File.Delete(SocketPath);
    }
}
