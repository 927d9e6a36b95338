using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace EdgeSlm.EdgeModule.Azure;

/// <summary>
/// The IoT Edge workload API on its unix socket: <c>POST /modules/{moduleId}/genid/{generationId}/sign</c> signs with
/// the module's key, which never leaves the HSM; <c>GET /trust-bundle</c> returns the CAs that edgeHub's
/// certificate chains to. JSON is written and read by hand (Utf8JsonWriter, JsonDocument): no reflection.
/// </summary>
public sealed class WorkloadClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _apiVersion;

    public WorkloadClient(string socketPath, string apiVersion)
    {
        _apiVersion = apiVersion;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellation) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellation);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        // The host name is never resolved: every connection goes to the socket.
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://workload/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>HMAC-SHA256 of <paramref name="data"/> under the module's primary key.</summary>
    public async Task<byte[]> SignAsync(string moduleId, string generationId, byte[] data, CancellationToken cancellation)
    {
        var body = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(body))
        {
            writer.WriteStartObject();
            writer.WriteString("keyId", "primary");
            writer.WriteString("algo", "HMACSHA256");
            writer.WriteBase64String("data", data);
            writer.WriteEndObject();
        }
        var content = new ByteArrayContent(body.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        string path = $"modules/{Uri.EscapeDataString(moduleId)}/genid/{Uri.EscapeDataString(generationId)}/sign?api-version={Uri.EscapeDataString(_apiVersion)}";
        using HttpResponseMessage response = await _http.PostAsync(path, content, cancellation);
        using JsonDocument json = await ReadAsync(response, "sign", cancellation);
        if (!json.RootElement.TryGetProperty("digest", out JsonElement digest) || digest.ValueKind != JsonValueKind.String || !digest.TryGetBytesFromBase64(out byte[]? signature))
        {
            throw new WorkloadException("the workload API's sign answer has no base64 \"digest\"");
        }
        return signature;
    }

    /// <summary>The CA certificates edgeHub's server certificate chains to.</summary>
    public async Task<X509Certificate2Collection> GetTrustBundleAsync(CancellationToken cancellation)
    {
        using HttpResponseMessage response = await _http.GetAsync($"trust-bundle?api-version={Uri.EscapeDataString(_apiVersion)}", cancellation);
        using JsonDocument json = await ReadAsync(response, "trust-bundle", cancellation);
        if (!json.RootElement.TryGetProperty("certificate", out JsonElement pem) || pem.ValueKind != JsonValueKind.String)
        {
            throw new WorkloadException("the workload API's trust-bundle answer has no \"certificate\"");
        }
        var bundle = new X509Certificate2Collection();
        bundle.ImportFromPem(pem.GetString());
        if (bundle.Count == 0)
        {
            throw new WorkloadException("the workload API's trust bundle holds no certificate");
        }
        return bundle;
    }

    private static async Task<JsonDocument> ReadAsync(HttpResponseMessage response, string operation, CancellationToken cancellation)
    {
        byte[] body = await response.Content.ReadAsByteArrayAsync(cancellation);
        if (!response.IsSuccessStatusCode)
        {
            // The runtime's error message says what is wrong (unknown module, stale generation id); it holds no secret.
            string message = System.Text.Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 300)));
            throw new WorkloadException($"the workload API refused {operation}: {(int)response.StatusCode} {message}");
        }
        try
        {
            return JsonDocument.Parse(body);
        }
        catch (JsonException e)
        {
            throw new WorkloadException($"the workload API's {operation} answer is not JSON: {e.Message}");
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Signs through the workload API: what an IoT Edge module does instead of holding a key.</summary>
public sealed class WorkloadSigner(WorkloadClient client, string moduleId, string generationId) : SasSigner
{
    public override Task<byte[]> SignAsync(byte[] stringToSign, CancellationToken cancellation) =>
        client.SignAsync(moduleId, generationId, stringToSign, cancellation);
}

/// <summary>The IoT Edge workload API failed or answered something unusable.</summary>
public sealed class WorkloadException(string message) : Exception(message);
