using System.Net.Sockets;
using System.Net;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// Whether a Wyoming intent service answers: <c>describe</c> sent, <c>info</c> read, as Home Assistant checks a
/// service when it is added. For <c>edgeslm health</c> when the module speaks Wyoming alone (no MQTT status).
/// </summary>
public static class WyomingHealth
{
    /// <summary>"online" when the service at <paramref name="settings"/>' port answered with info; otherwise what went wrong.</summary>
    public static async Task<string> CheckAsync(WyomingSettings settings, TimeSpan timeout)
    {
        // A service listening on every address is reached on loopback.
        IPAddress address = settings.ParsedAddress() is var listen && (listen.Equals(IPAddress.Any) || listen.Equals(IPAddress.IPv6Any))
            ? (listen.Equals(IPAddress.Any) ? IPAddress.Loopback : IPAddress.IPv6Loopback)
            : listen;
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            using var client = new TcpClient(address.AddressFamily);
            await client.ConnectAsync(address, settings.Port, cancellation.Token);
            NetworkStream stream = client.GetStream();
            await WyomingEventWriter.WriteAsync(stream, WyomingEvent.Empty(WyomingEventTypes.Describe), cancellation.Token);
            WyomingEvent? answer = await new WyomingEventReader(stream, settings.Limits).ReadAsync(cancellation.Token);
            return answer?.Type == WyomingEventTypes.Info ? "online" : $"answered {answer?.Type ?? "nothing"} to describe";
        }
        catch (OperationCanceledException)
        {
            return $"no answer within {timeout.TotalSeconds:F0} s";
        }
        catch (Exception e) when (e is SocketException or IOException or WyomingProtocolException)
        {
            return e.Message;
        }
    }
}
