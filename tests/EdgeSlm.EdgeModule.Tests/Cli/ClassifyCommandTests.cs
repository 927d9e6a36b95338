using System.Text.Json;
using EdgeSlm.EdgeModule.Tests.Support;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Cli;

public sealed class ClassifyCommandTests(ConvertedModels models)
{
    [Fact]
    public void Classify_command_prints_one_json_result_per_input()
    {
        (int exit, string output) = ModuleProcess.RunToEnd(TimeSpan.FromMinutes(3), "classify", "--model", models.Path(BundledModel.MiniLM, QuantType.Q4_0),
            "turn off the garage lights", "set the thermostat to 19 degrees", "what's the capital of australia");
        Assert.Equal(0, exit);
        JsonElement[] lines = output.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(3, lines.Length);
        Assert.Equal(["turn off the garage lights", "set the thermostat to 19 degrees", "what's the capital of australia"], lines.Select(l => l.GetProperty("text").GetString()));
        Assert.Equal("HassTurnOff", lines[0].GetProperty("intent").GetString());
        Assert.Equal("HassClimateSetTemperature", lines[1].GetProperty("intent").GetString());
        JsonElement temperature = lines[1].GetProperty("slots").EnumerateArray().Single(s => s.GetProperty("slot").GetString() == "temperature");
        Assert.Equal(("19", "19", 22, 24), (temperature.GetProperty("value").GetString(), temperature.GetProperty("raw").GetString(), temperature.GetProperty("start").GetInt32(), temperature.GetProperty("end").GetInt32()));
        Assert.False(lines[2].GetProperty("recognized").GetBoolean());
        Assert.Equal(JsonValueKind.Null, lines[2].GetProperty("intent").ValueKind);
        foreach (JsonElement line in lines)
        {
            Assert.InRange(line.GetProperty("confidence").GetDouble(), 0, 1);
        }
    }
}
