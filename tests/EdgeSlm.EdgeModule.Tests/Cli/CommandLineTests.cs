using EdgeSlm.EdgeModule.Cli;

namespace EdgeSlm.EdgeModule.Tests.Cli;

public sealed class CommandLineTests
{
    public static TheoryData<string> Verbs() => ["info", "convert", "embed", "classify", "run", "health", "demo", "eval", "train", "generate"];

    [Theory]
    [MemberData(nameof(Verbs))]
    public void Every_command_prints_its_own_usage_for_help(string verb)
    {
        foreach (string[] args in new[] { new[] { verb, "--help" }, [verb, "-h"], ["help", verb], [verb, "--model", "x.gguf", "--help"] })
        {
            var output = new StringWriter();
            var error = new StringWriter();
            int code = CommandLine.Run(args, output, error);
            Assert.Equal(CommandLine.ExitOk, code);
            Assert.Equal("", error.ToString());
            string[] lines = output.ToString().Split('\n');
            Assert.Equal("Usage:", lines[0]);
            Assert.StartsWith($"  edgeslm {verb}", lines[1]);
            // Only this command's lines, not the whole list.
            Assert.DoesNotContain(lines, l => l.StartsWith("  edgeslm ") && !l.StartsWith($"  edgeslm {verb}"));
        }
    }

    [Fact]
    public void Help_for_an_unknown_command_is_a_usage_error()
    {
        var error = new StringWriter();
        Assert.Equal(CommandLine.ExitUsage, CommandLine.Run(["frobnicate", "--help"], new StringWriter(), error));
        Assert.Contains("Unknown command 'frobnicate'", error.ToString());
    }
}
